"""A run of allocated seconds as a usage event (SPEC.md, "Usage event"), with an id that
makes every re-send an exact duplicate.

The event's id is derived from what it says: the provider, the GPU, the minute, the
attribution and the run's first second (a minute may hold several runs of one
attribution, around a gap). The same run always gives the same bytes, so whatever sends
it twice (a restart before the broker's acknowledgement was recorded, a second agent)
sends a duplicate by SPEC.md's rules, and `(source, id)` traces it to this node. Billing
never depends on the id: the ledger counts GPU-seconds, so even a run re-observed
differently after a crash could not bill a second twice.
"""

from __future__ import annotations

import hashlib

import orjson

from ledger.collect.usage import Run
from ledger.domain import events

AGENT = "gpuledger-collect"


def event_id(provider: str, run: Run) -> str:
    """A UUID-shaped digest of (provider, GPU, minute, attribution, first second)."""
    a = run.attribution
    key = "\x1f".join((provider, run.gpu_uuid, str(run.minute), a.reseller, a.tenant, a.sku, str(run.start)))
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def source_of(provider: str, node: str) -> str:
    """`//sakura/node-042`: who said it, for tracing."""
    return f"//{provider}/{node}"


def usage_event(provider: str, node: str, run: Run) -> bytes:
    """The event's JSON, keys sorted so the same run is always the same bytes. Evidence
    (utilisation, memory, node) is in `data.evidence`, which the ledger ignores."""
    evidence: dict = {"node": node, "agent": AGENT}
    if run.utilisation_percent is not None:
        evidence["utilisation_percent"] = run.utilisation_percent
    if run.memory_used_bytes is not None:
        evidence["memory_used_bytes"] = run.memory_used_bytes
    event = events.usage_event(event_id(provider, run), source_of(provider, node), run.start, {
        "provider": provider,
        "reseller": run.attribution.reseller,
        "tenant": run.attribution.tenant,
        "gpu_uuid": run.gpu_uuid,
        "sku": run.attribution.sku,
        "seconds": run.seconds,
        "evidence": evidence,
    })
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
