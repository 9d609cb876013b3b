"""A public scenario's steps on a running stack, with room for faults, and how far the
outputs are from expected.json (in events, GPU-seconds and yen).

Over HTTP, each GPU's events go in order, one GPU per request (so a request is one
record on that GPU's partition, as `ingest` keys them): the order of conflicting claims
is the file's, as the expected outputs assume. Lines the API refuses before Kafka (not
JSON objects with a data object) are left out; only the statements are compared then.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import orjson

from bench.harness import LocalStack
from tests.scenario import BASE_STEPS, batch_bytes, batch_lines, comparable, normalized

HTTP_CHUNK_EVENTS = 500
HTTP_RETRY_SECONDS = 0.5
HTTP_GIVE_UP_SECONDS = 300.0
STATEMENT_STEPS = ("settle_sep", "settle_sep_again", "settle_oct")


class ScenarioRun:
    def __init__(self, stack: LocalStack, directory: Path) -> None:
        self.stack, self.directory = stack, directory
        self.folder = stack.folder

    def steps(self, during_ingest: threading.Thread | None = None, over_http: bool = False, flood: bool = False) -> dict:
        stack = self.stack
        stack.run("catalog", "load", str(self.directory / "catalog.toml"))
        got: dict = {}
        if during_ingest is not None:
            during_ingest.start()
        got["ingest1"] = self._ingest("batch1", over_http)
        got["settle_sep"] = self._command("settle", "2026-09", "--close")
        flooding = self._flood() if flood else None
        got["ingest2"] = self._ingest("batch2", over_http)
        if flooding is not None:
            flooding.join()
        if during_ingest is not None:
            during_ingest.join()
        got["settle_sep_again"] = self._command("settle", "2026-09")
        got["settle_oct"] = self._command("settle", "2026-10", "--close")
        for step, period in (("capacity_sep", "2026-09"), ("capacity_oct", "2026-10")):
            got[step] = self._command("report", "capacity", period)
        return got

    def _command(self, *args: str) -> dict:
        """A command's JSON, tried again while a service is away (exit 3), as an operator would."""
        deadline = time.monotonic() + HTTP_GIVE_UP_SECONDS
        while True:
            completed = self.stack.run(*args, check=False)
            if completed.returncode == 0:
                return orjson.loads(completed.stdout)
            if completed.returncode != 3 or time.monotonic() > deadline:
                raise RuntimeError(f"gpuledger {' '.join(args)}: {completed.stderr.decode()[-500:]}")
            time.sleep(1)

    def _ingest(self, batch: str, over_http: bool) -> dict | None:
        if over_http:
            return {"http": HttpIngest(self.stack).send(batch_lines(self.directory, batch))}
        path = self.folder / f"{batch}.ndjson"
        path.write_bytes(batch_bytes(self.directory, batch))
        return self.stack.json("ingest", str(path), "--wait", "--timeout", "900", timeout=1000)

    def _flood(self) -> threading.Thread:
        """A second producer re-sends the first batch while the second is ingested."""
        path = self.folder / "flood.ndjson"
        path.write_bytes(batch_bytes(self.directory, "batch1"))
        thread = threading.Thread(
            target=lambda: self.stack.run("ingest", str(path), "--wait", "--batch-events", "1", timeout=1000),
            name="duplicate flood", daemon=True,
        )
        thread.start()
        return thread


class HttpIngest:
    """POST /v1/events with an admin token, retrying while the API is away."""

    def __init__(self, stack: LocalStack) -> None:
        self.url = stack.env_values()["GPULEDGER_API_URL"]
        token = stack.json("token", "create", "--role", "admin")["token"]
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/cloudevents-batch+json"}
        self.stack = stack

    def send(self, lines: list[bytes]) -> dict:
        """Send the lines the API takes; {"sent": events, "decided": events the ledger
        counted as received for those requests}."""
        by_gpu: dict[str, list[dict]] = {}
        for line in lines:
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict) and isinstance(event.get("data"), dict):
                by_gpu.setdefault(str(event["data"].get("gpu_uuid")), []).append(event)
        ingest_ids = []
        for events in by_gpu.values():
            for start in range(0, len(events), HTTP_CHUNK_EVENTS):
                chunk = events[start : start + HTTP_CHUNK_EVENTS]
                ingest_ids.append((self._post(orjson.dumps(chunk)), len(chunk)))
        return self._wait(ingest_ids)

    def _post(self, body: bytes) -> str:
        deadline = time.monotonic() + HTTP_GIVE_UP_SECONDS
        while True:
            try:
                answer = httpx.post(f"{self.url}/v1/events", content=body, headers=self.headers, timeout=60)
                if answer.status_code == 202:
                    return answer.json()["ingest_id"]
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the API did not take a request for 5 minutes")
            time.sleep(HTTP_RETRY_SECONDS)

    def _wait(self, ingest_ids: list[tuple[str, int]]) -> None:
        from tests.db import fetch  # the tallies, as `ingest --wait` reads them

        sent = dict(ingest_ids)
        decided: dict[str, int] = {}
        deadline = time.monotonic() + HTTP_GIVE_UP_SECONDS
        while set(decided) != set(sent) and time.monotonic() < deadline:
            rows = fetch(self.stack.database_url, "SELECT ingest_id, sum(received) AS n FROM intake_tallies "
                         "WHERE ingest_id = ANY($1::text[]) GROUP BY ingest_id", list(sent))
            decided = {row["ingest_id"]: int(row["n"]) for row in rows if row["n"] >= sent[row["ingest_id"]]}
            time.sleep(0.3)
        if set(decided) != set(sent):
            raise RuntimeError(f"{len(set(sent) - set(decided))} requests were not decided in time")
        return {"sent": sum(sent.values()), "decided": sum(decided.values())}


def _lines_by_key(statement: dict) -> dict:
    return {tuple(line[k] for k in ("reseller", "tenant", "provider", "sku", "service_period",
                                    "retail_price_from", "agreement_from")): line for line in statement["lines"]}


def _statement_difference(got: dict, want: dict) -> tuple[int, int]:
    """(GPU-seconds, yen) by which two statements differ: every line, invoice and net."""
    got_lines, want_lines = _lines_by_key(normalized(got)), _lines_by_key(normalized(want))
    seconds = yen = 0
    for key in set(got_lines) | set(want_lines):
        mine, theirs = got_lines.get(key, {}), want_lines.get(key, {})
        seconds += abs(mine.get("gpu_seconds", 0) - theirs.get("gpu_seconds", 0))
        yen += abs(mine.get("retail_yen", 0) - theirs.get("retail_yen", 0))
        yen += abs(mine.get("wholesale_yen", 0) - theirs.get("wholesale_yen", 0))
    for section in ("tenant_invoices", "member_invoices"):
        yen += abs(sum(i["total_yen"] for i in got[section]) - sum(i["total_yen"] for i in want[section]))
    members = set(got["net_yen"]) | set(want["net_yen"])
    yen += sum(abs(got["net_yen"].get(m, 0) - want["net_yen"].get(m, 0)) for m in members)
    return seconds, yen


def difference(got: dict, want: dict) -> dict:
    """Events (received, per ingest), GPU-seconds and yen away from the expected outputs;
    `exact` when every compared output is equal."""
    events = sum(_count_difference(got[step], want[step]) for step in ("ingest1", "ingest2"))
    seconds = yen = 0
    for step in STATEMENT_STEPS:
        s, y = _statement_difference(got[step], want[step])
        seconds, yen = seconds + s, yen + y
    compared = [s for s in want if s in BASE_STEPS and "http" not in got.get(s, {})]
    exact = all(comparable(got[s], want[s]) == normalized(want[s]) for s in compared)
    return {"events": events, "gpu_seconds": seconds, "yen": yen, "exact": exact}


def _count_difference(got: dict, want: dict) -> int:
    """Events counted differently: received, accepted, duplicate and each rejection reason;
    over HTTP (no file, so no expected counts), events sent but not counted as received."""
    if "http" in got:
        return abs(got["http"]["sent"] - got["http"]["decided"])
    flat = [lambda c: c["received"], lambda c: c["accepted"], lambda c: c["duplicate"]]
    reasons = set(got["rejected"]) | set(want["rejected"])
    flat += [lambda c, r=r: c["rejected"].get(r, 0) for r in reasons]
    return sum(abs(read(got) - read(want)) for read in flat)
