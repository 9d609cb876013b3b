"""The pipeline benchmark's events: per-GPU-second CloudEvents written to NDJSON files.

Owns: `write_events` (one file per phase, with GPU uuids of its own so that no phase's
events duplicate another's) and `EventSet`, what a phase needs to know about its file
(and, for the phases that send single-event records, the events keyed by GPU).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson


@dataclass
class EventSet:
    phase: str
    path: Path
    count: int
    gpus: int
    first_time: str
    last_time: str
    keyed: list[tuple[bytes, bytes]] = field(default_factory=list)  # (gpu_uuid, line)


def _event_line(event_id: str, time_text: str, gpu: int, gpu_uuid: str, provider: str, reseller: str) -> bytes:
    """One 1-second H100 event of GPU number `gpu`, as an NDJSON line (no newline)."""
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": f"//{provider}/dc-1/node-{gpu // 8:04d}",
            "type": "gpu.usage.v1",
            "time": time_text,
            "datacontenttype": "application/json",
            "data": {
                "provider": provider,
                "reseller": reseller,
                "tenant": f"tenant-{gpu % 37:02d}",
                "gpu_uuid": gpu_uuid,
                "sku": "H100",
                "seconds": 1,
            },
        }
    )


def write_events(folder: Path, phase: str, run_tag: str, events: int, gpus: int, keep: bool) -> EventSet:
    """`events` 1-second events of `gpus` GPUs, interleaved across GPUs, in the recent past.

    GPU g's k-th event starts at T0 + k s, with T0 = now - (events per GPU) - 600 s, so
    every event ends at least 10 minutes ago (never `future`) and starts within the last
    hours (never `too_late`). Lines go round the GPUs: one second of every GPU, then the
    next second, as collectors would send them.
    """
    per_gpu = math.ceil(events / gpus)
    t0 = int(time.time()) - per_gpu - 600
    times = [
        dt.datetime.fromtimestamp(t0 + k, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for k in range(per_gpu)
    ]
    uuids = [f"GPU-{run_tag}-{phase}{g:05d}-4c1e-9a7b-3d2f6e8a0b1c" for g in range(gpus)]
    attributions = [("beta", "alpha") if g % 2 == 0 else ("alpha", "beta") for g in range(gpus)]
    path = folder / f"events-{phase}.ndjson"
    result = EventSet(phase, path, 0, gpus, times[0], times[-1])
    with open(path, "wb") as out:
        for k in range(per_gpu):
            chunk = []
            for g in range(gpus):
                if result.count == events:
                    break
                provider, reseller = attributions[g]
                line = _event_line(f"{run_tag}-{phase}-{g:05d}-{k:07d}", times[k], g, uuids[g], provider, reseller)
                chunk.append(line)
                if keep:
                    result.keyed.append((uuids[g].encode(), line))
                result.count += 1
            out.write(b"\n".join(chunk) + b"\n")
    return result
