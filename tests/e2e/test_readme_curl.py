"""The curl examples of README.md's "The usage API" section work as written.

They run with bash against a real stack (`make_stack()`, like `gpuledger dev up`), from
the repository's folder, after the section's own set-up block (catalog, `gpuledger dev
env` exported, `TOKEN=...`): each must exit 0 (`curl --fail-with-body` fails on an HTTP
error) and answer the status the text before it documents ("it answers 202").

The commands are not edited: curl reads a `.curlrc` from the test's own CURL_HOME that
adds `--write-out` with the status code after the body.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import httpx
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.infra

README = ROOT / "README.md"
SECTION = "## The usage API"
STATUS_MARK = "\n@@status="


def section_text() -> str:
    text = README.read_text()
    start = text.index(f"\n{SECTION}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def blocks() -> list[tuple[str, str]]:
    """(the prose before it, the code) of each ```sh block of the section, in order."""
    found, prose_start = [], 0
    text = section_text()
    for match in re.finditer(r"^```sh\n(.*?)^```$", text, re.S | re.M):
        found.append((text[prose_start : match.start()], match.group(1)))
        prose_start = match.end()
    return found


def setup_block() -> str:
    setups = [code for _, code in blocks() if "curl" not in code]
    assert len(setups) == 1, "the section has one set-up block (no curl) before its examples"
    return setups[0]


def curl_examples() -> list[tuple[int, str]]:
    """(documented status, command) of every block with a curl command."""
    examples = []
    for prose, code in blocks():
        if "curl" not in code:
            continue
        statuses = re.findall(r"answers (\d{3})", prose)
        assert statuses, f"no documented status ('it answers NNN') before:\n{code}"
        examples.append((int(statuses[-1]), code))
    return examples


def test_the_section_has_the_examples_asked_for():
    commands = "\n".join(code for _, code in curl_examples())
    assert len(curl_examples()) >= 4
    for needed in ("/v1/usage?", "group_by=", "granularity=", "/v1/statements/2026-10",
                   "application/cloudevents+json", "application/cloudevents-batch+json", "ce-specversion: 1.0"):
        assert needed in commands, needed
    for _, code in curl_examples():
        assert code.lstrip().startswith("curl --fail-with-body"), code
    assert "token create" in setup_block() and "dev env" in setup_block()


@pytest.fixture(scope="module")
def readme_shell(make_stack, tmp_path_factory):
    """The environment a reader's shell has after the set-up block, and a curlrc."""
    gpuledger = ROOT / ".venv" / "bin" / "gpuledger"
    assert gpuledger.exists(), "the README's commands use .venv/bin/gpuledger: run `make install`"
    stack = make_stack()
    folder = tmp_path_factory.mktemp("readme-curl")
    saved_env, saved_token = folder / "env", folder / "token"
    script = (
        "set -euo pipefail\n"
        + setup_block()
        + f'\nenv -0 > "{saved_env}"\nprintf %s "$TOKEN" > "{saved_token}"\n'
    )
    completed = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=stack.env, capture_output=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr.decode(errors="replace")
    env = dict(item.split("=", 1) for item in saved_env.read_text().split("\0") if "=" in item)
    token = saved_token.read_text()
    assert token.startswith("glt_"), token
    assert env["GPULEDGER_API_URL"].startswith("http://127.0.0.1:")
    curl_home = folder / "curl-home"
    curl_home.mkdir()
    (curl_home / ".curlrc").write_text(f'write-out = "{STATUS_MARK.replace(chr(10), chr(92) + "n")}%{{http_code}}"\n')
    return {**env, "TOKEN": token, "CURL_HOME": str(curl_home)}


@pytest.mark.parametrize(
    "status, command", curl_examples(), ids=[f"{i}-{s}" for i, (s, _) in enumerate(curl_examples())]
)
def test_readme_curl_example(readme_shell, status, command):
    completed = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + command],
        cwd=ROOT, env=readme_shell, capture_output=True, timeout=60,
    )
    output = completed.stdout.decode(errors="replace")
    assert completed.returncode == 0, f"exit {completed.returncode}: {output}\n{completed.stderr.decode(errors='replace')}"
    body, mark, answered = output.rpartition(STATUS_MARK)
    assert mark, f"no status written: {output}"
    assert int(answered) == status, output
    document = json.loads(body)
    if "/v1/events" in command:
        sent = re.search(r"--data-binary '(.*)'", command, re.S).group(1)
        events = json.loads(sent)
        assert document["accepted"] == (len(events) if isinstance(events, list) else 1)
    elif "/v1/usage" in command:
        assert {"granularity", "group_by", "items"} <= set(document)
    elif "/v1/statements/" in command:
        assert document["member"] == "kddi" and "lines" in document


def test_the_readme_events_reach_the_ledger_once(readme_shell):
    """The example events are valid: all their seconds show up in kddi's usage, once.

    Sends every POST example again first (so this test stands alone): the ledger counts
    a repeated event as a duplicate, so the total is the same however often they ran.
    """
    posts = [code for _, code in curl_examples() if "/v1/events" in code]
    expected = 0
    for code in posts:
        sent = json.loads(re.search(r"--data-binary '(.*)'", code, re.S).group(1))
        if "ce-specversion:" in code:  # binary mode: the body is the event's data
            sent = {"data": sent}
        expected += sum(event["data"]["seconds"] for event in (sent if isinstance(sent, list) else [sent]))
        completed = subprocess.run(["bash", "-c", code], cwd=ROOT, env=readme_shell, capture_output=True, timeout=60)
        assert completed.returncode == 0, completed.stdout
    url = readme_shell["GPULEDGER_API_URL"] + "/v1/usage"
    headers = {"Authorization": f"Bearer {readme_shell['TOKEN']}"}
    total = None
    for _ in range(300):  # at most 60 s
        page = httpx.get(url, params={"period": "2026-10", "granularity": "month"}, headers=headers, timeout=30)
        assert page.status_code == 200, page.text
        total = sum(item["gpu_seconds"] for item in page.json()["items"])
        if total >= expected:
            break
        time.sleep(0.2)
    time.sleep(1)  # anything still in flight (a second copy) would show now
    page = httpx.get(url, params={"period": "2026-10", "granularity": "month"}, headers=headers, timeout=30)
    assert sum(item["gpu_seconds"] for item in page.json()["items"]) == expected == total
