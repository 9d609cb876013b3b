"""Looking at documents as a person does: headless Chromium screenshots and PDF pages as
PNG (poppler's pdftoppm), kept as test artefacts under test-artifacts/ (or
$GPULEDGER_TEST_ARTIFACTS)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

from tests.conftest import ROOT

ARTIFACTS = Path(os.environ.get("GPULEDGER_TEST_ARTIFACTS") or ROOT / "test-artifacts")
# Headless on a machine with no network and no display, as root.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--force-device-scale-factor=1",
)


def artefacts(name: str) -> Path:
    folder = ARTIFACTS / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError("headless Chromium is missing: Debian's chromium (`make install` installs it)")


def screenshot(page: Path, png: Path, width: int = 1000, height: int = 1400) -> Image.Image:
    """A screenshot of an HTML file as Chromium draws it, `width` x `height` pixels."""
    with tempfile.TemporaryDirectory(prefix="gpuledger-chromium-") as profile:
        completed = subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
             f"--screenshot={png}", page.resolve().as_uri()],
            capture_output=True, timeout=120,
        )
    assert completed.returncode == 0 and png.exists(), completed.stderr.decode(errors="replace")[-2000:]
    return Image.open(png)


def pdf_pages(pdf: Path, prefix: Path, dpi: int = 60) -> list[Path]:
    """The PDF's pages as PNG files `prefix-N.png`."""
    assert shutil.which("pdftoppm"), "pdftoppm is missing: poppler-utils (`make install` installs it)"
    subprocess.run(["pdftoppm", "-png", "-r", str(dpi), str(pdf), str(prefix)], check=True, timeout=120)
    return sorted(prefix.parent.glob(prefix.name + "-*.png"))


def ink(image: Image.Image, box: tuple[int, int, int, int] | None = None) -> float:
    """The share of pixels that are not near-white (in `box`, or the whole image)."""
    gray = image.convert("L")
    if box:
        gray = gray.crop(box)
    histogram = gray.histogram()
    return sum(histogram[:200]) / max(sum(histogram), 1)
