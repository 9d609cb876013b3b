"""The agent's own metrics (Prometheus) and its health endpoint.

`/metrics` serves the metrics below; `/healthz` answers 200 while the agent samples its
GPUs on time and 503 when it has not for `STALL_SECONDS` (a hung NVML, a stuck disk),
with `{"status", "last_tick_age_seconds", "spool_events"}`. deploy/collector-alerts.yml
alerts on them. Each agent has its own registry (tests run several in one process).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

STALL_SECONDS = 10.0


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.gpus = Gauge("gpuledger_collect_gpus", "GPUs NVML reports, by state (present: readable; lost: off the bus)", ["state"], registry=registry)
        self.attributed = Counter("gpuledger_collect_attributed_seconds_total", "GPU-seconds sampled with an attribution (billable)", registry=registry)
        self.idle = Counter("gpuledger_collect_idle_seconds_total", "GPU-seconds sampled that no one held", registry=registry)
        self.unattributed = Counter("gpuledger_collect_unattributed_seconds_total", "GPU-seconds held but not billable, by reason", ["reason"], registry=registry)
        self.filled = Counter("gpuledger_collect_filled_seconds_total", "GPU-seconds the agent did not sample but filled (same holder on both sides of a short gap)", registry=registry)
        self.spool_events = Gauge("gpuledger_collect_spool_events", "Events waiting in the spool for the broker", registry=registry)
        self.spool_limit = Gauge("gpuledger_collect_spool_limit_events", "The most events the spool holds", registry=registry)
        self.spool_age = Gauge("gpuledger_collect_spool_oldest_age_seconds", "Age of the oldest event waiting (0: none)", registry=registry)
        self.refused = Counter("gpuledger_collect_spool_refused_seconds_total", "GPU-seconds not spooled because the spool was full (lost to billing)", registry=registry)
        self.sent = Counter("gpuledger_collect_events_sent_total", "Events the broker acknowledged", registry=registry)
        self.send_errors = Counter("gpuledger_collect_send_errors_total", "Sends that failed (broker unreachable, timed out)", registry=registry)
        self.source_errors = Counter("gpuledger_collect_attribution_errors_total", "Ticks whose attribution source failed (its GPUs unattributed)", registry=registry)
        self.last_tick = Gauge("gpuledger_collect_last_tick_timestamp_seconds", "Wall-clock time of the last sample", registry=registry)
        self.last_tick_monotonic = time.monotonic()
        self.spool_depth = 0

    def spooled(self, depth: int, limit: int, oldest_age_seconds: float) -> None:
        self.spool_depth = depth
        self.spool_events.set(depth)
        self.spool_limit.set(limit)
        self.spool_age.set(oldest_age_seconds)

    def ticked(self) -> None:
        self.last_tick.set(time.time())
        self.last_tick_monotonic = time.monotonic()

    def health(self) -> tuple[int, dict]:
        age = time.monotonic() - self.last_tick_monotonic
        healthy = age <= STALL_SECONDS
        body = {"status": "ok" if healthy else "stalled", "last_tick_age_seconds": round(age, 3),
                "spool_events": self.spool_depth}
        return (200 if healthy else 503), body


def serve(metrics: Metrics, host: str, port: int) -> ThreadingHTTPServer:
    """Serve /metrics and /healthz on a daemon thread; `shutdown()` the server to stop."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path == "/metrics":
                status, body, kind = 200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST
            elif self.path == "/healthz":
                status, document = metrics.health()
                body, kind = json.dumps(document).encode(), "application/json"
            else:
                status, body, kind = 404, b"not found\n", "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="collect-metrics", daemon=True).start()
    return server
