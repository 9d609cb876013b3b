"""Faust's own ceiling: a stock Faust agent that does no work, in INFRA.md's configuration.

Run by `bench.pipeline` (phase d), one process per stack worker, in a consumer group of
its own on a topic of its own:

    python -m bench.faust_ceiling BOOTSTRAP TOPIC GROUP STATUS_FILE

Configuration as INFRA.md measured it: `faust.App` and Faust's own consumer (not
`streams.faust_ext`), `value_serializer="raw"`, uvloop, `stream_buffer_maxsize=262144`,
`stream.take_events(10000, within=0.5)`, the Monitor sensor removed like the workers do.
The agent only counts. After its partitions are assigned and after every batch it
writes STATUS_FILE (JSON: partitions assigned, events counted, wall-clock time of the
first and the last batch), which the bench polls. The bench kills it with SIGKILL when
done, so it never sends LeaveGroup (see INFRA.md on back-to-back LeaveGroups).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

TAKE_MAX_RECORDS = 10_000
TAKE_WITHIN_SECONDS = 0.5
STREAM_BUFFER_MAXSIZE = 262_144


def main(argv: list[str]) -> None:
    bootstrap, topic_name, group, status_path = argv
    status_file = Path(status_path)
    import uvloop

    uvloop.install()
    import faust

    datadir = status_file.with_name(f"{status_file.stem}-data")  # in the bench's folder, removed with it
    app = faust.App(
        group,
        broker=f"kafka://{bootstrap}",
        datadir=str(datadir),
        store="memory://",
        value_serializer="raw",
        key_serializer="raw",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        broker_rebalance_timeout=10,
        producer_max_batch_size=64,
        stream_buffer_maxsize=STREAM_BUFFER_MAXSIZE,
        web_enabled=False,
    )
    topic = app.topic(topic_name, value_type=bytes, value_serializer="raw", key_serializer="raw")
    status = {"pid": os.getpid(), "assigned": 0, "count": 0, "first": None, "last": None}

    def write_status() -> None:
        scratch = status_file.with_suffix(".tmp")
        scratch.write_text(json.dumps(status))
        scratch.replace(status_file)

    @app.task
    async def without_monitor() -> None:
        app.sensors.remove(app.monitor)

    @app.on_partitions_assigned.connect
    async def on_assigned(sender, assigned, **kwargs) -> None:
        status["assigned"] = sum(1 for tp in assigned if tp.topic == topic_name)
        write_status()

    @app.agent(topic, concurrency=1)
    async def count(stream) -> None:
        async for events in stream.take_events(TAKE_MAX_RECORDS, within=TAKE_WITHIN_SECONDS):
            now = time.time()
            if status["first"] is None:
                status["first"] = now
            status["last"] = now
            status["count"] += len(events)
            write_status()

    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1:])
