"""The agent's health endpoint: 200 while it samples on time, 503 once it stalls."""

import json
import urllib.error
import urllib.request

from ledger.collect.metrics import STALL_SECONDS, Metrics, serve


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_health_and_metrics_over_http():
    metrics = Metrics()
    metrics.ticked()
    metrics.spooled(7, 100, 12.0)
    server = serve(metrics, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        status, body = get(base + "/healthz")
        assert status == 200 and json.loads(body)["spool_events"] == 7
        status, body = get(base + "/metrics")
        assert status == 200 and b"gpuledger_collect_spool_oldest_age_seconds 12.0" in body
        metrics.last_tick_monotonic -= STALL_SECONDS + 1  # no tick for longer than the stall bound
        status, body = get(base + "/healthz")
        assert status == 503 and json.loads(body)["status"] == "stalled"
        assert get(base + "/other")[0] == 404
    finally:
        server.shutdown()
