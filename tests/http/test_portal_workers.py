"""The operator page's reading of the workers' /metrics (ledger/http/portal/workers.py):
how many answer, and each partition's lag from the worker furthest on it."""

from __future__ import annotations

import http.server
import threading

from ledger.dev import free_port
from ledger.http.portal import workers
from ledger.settings import worker_metrics_urls

PAGE_A = """\
# HELP gpuledger_consumer_lag_records Records after the last batch
# TYPE gpuledger_consumer_lag_records gauge
gpuledger_consumer_lag_records{partition="0",topic="gpu.usage"} 12.0
gpuledger_consumer_lag_records{partition="1",topic="gpu.usage"} 500.0
# TYPE gpuledger_committed_position gauge
gpuledger_committed_position{partition="0",topic="gpu.usage"} 100.0
gpuledger_committed_position{partition="1",topic="gpu.usage"} 40.0
"""
# Partition 1 moved to worker B, which is further on it: its lag is the current one.
PAGE_B = """\
# TYPE gpuledger_consumer_lag_records gauge
gpuledger_consumer_lag_records{partition="1",topic="gpu.usage"} 3.0
# TYPE gpuledger_committed_position gauge
gpuledger_committed_position{partition="1",topic="gpu.usage"} 537.0
"""


def test_each_partitions_lag_comes_from_the_worker_furthest_on_it():
    seen = workers.combine([PAGE_A, PAGE_B, None])
    assert (seen.asked, seen.up) == (3, 2)
    assert seen.lag == {("gpu.usage", 0): 12, ("gpu.usage", 1): 3}
    assert seen.total_lag == 15


def test_a_page_without_the_workers_figures_is_up_with_no_lag():
    seen = workers.combine(["# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.0\n"])
    assert (seen.up, seen.lag) == (1, {})


def test_a_name_that_does_not_resolve_is_read_as_given():
    assert workers.endpoints("http://no-such-host.invalid:9100/metrics") == ["http://no-such-host.invalid:9100/metrics"]


async def test_workers_are_read_over_http_and_one_that_does_not_answer_is_down():
    class Metrics(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 -- the standard library's name
            body = PAGE_A.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        up = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        down = f"http://127.0.0.1:{free_port()}/metrics"
        seen = await workers.read((up, down))
    finally:
        server.shutdown()
    assert (seen.asked, seen.up) == (2, 1)
    assert seen.lag[("gpu.usage", 1)] == 500


def test_the_urls_come_from_the_environment_else_from_the_local_stacks_workers(monkeypatch):
    stack = {"components": [{"role": "worker", "port": 4101}, {"role": "api", "port": 4000},
                            {"role": "worker", "port": 4102}]}
    monkeypatch.delenv("GPULEDGER_WORKER_METRICS_URLS", raising=False)
    assert worker_metrics_urls(stack) == ("http://127.0.0.1:4101/metrics", "http://127.0.0.1:4102/metrics")
    monkeypatch.setenv("GPULEDGER_WORKER_METRICS_URLS", "http://worker:9100/metrics, ")
    assert worker_metrics_urls(stack) == ("http://worker:9100/metrics",)
