"""The Japanese face of every document: IPAex Gothic (Debian's fonts-ipaexfont-gothic),
the usual face of Japanese business documents, embedded (subset) in every PDF."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ledger.domain.errors import LedgerError

FAMILY = "IPAexGothic"
# Where distributions put it: Debian's package, its alternative link, then other layouts.
CANDIDATES = (
    "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
    "/usr/share/fonts/ipa-ex-gothic/ipaexg.ttf",
    "/usr/share/fonts/TTF/ipaexg.ttf",
)
CSS_FAMILIES = f'"{FAMILY}", "IPAexゴシック", "Noto Sans CJK JP", sans-serif'


class MissingFont(LedgerError):
    """Documents cannot be made without a Japanese font (a machine not set up)."""


@lru_cache(maxsize=1)
def japanese_font() -> Path:
    for candidate in CANDIDATES:
        path = Path(candidate)
        if path.is_file():
            return path.resolve()
    raise MissingFont(
        "documents need the Japanese font IPAex Gothic: install Debian's fonts-ipaexfont-gothic "
        "(`make install` does)"
    )
