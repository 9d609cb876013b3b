"""Prometheus metrics of the stream workers (served on /metrics with --metrics-port)."""

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "gpuledger_events_total",
    "Events received by the workers, by outcome (accepted, duplicate or the reject reason)",
    ["outcome"],
)
BATCH_RECORDS = Histogram(
    "gpuledger_batch_records",
    "Kafka records per batch",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
BATCH_EVENTS = Histogram(
    "gpuledger_batch_events",
    "Events per batch",
    buckets=(1, 10, 100, 1000, 5000, 10000, 50000, 100000, 250000),
)
FLUSH_SECONDS = Histogram(
    "gpuledger_flush_seconds",
    "Time to decide and write one batch in PostgreSQL",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
REDELIVERED = Counter(
    "gpuledger_redelivered_records_total",
    "Records skipped because an earlier transaction had applied them",
)
STORE_RETRIES = Counter(
    "gpuledger_store_retries_total",
    "Batches retried because the ledger's database was busy (deadlock) or unavailable (outage)",
    ["reason"],
)
USAGE_TOPICS = Gauge(
    "gpuledger_usage_topics",
    "Usage topics (the operator's and members') this worker reads, and those it leaves unread because "
    "their records' timestamps would be their producers' (streams/subscription.py)",
    ["state"],
)
POSITION_GAPS = Counter(
    "gpuledger_position_gaps_total",
    "Partitions read again from the ledger's position because records after it arrived first "
    "(after a rebalance, or Kafka's committed offsets ahead of the ledger)",
)
LOG_OFFSETS_MISSING = Counter(
    "gpuledger_log_offsets_missing_total",
    "Offsets the ledger never read that Kafka no longer holds (deleted by retention before metering)",
)
COMMITTED_POSITION = Gauge(
    "gpuledger_committed_position",
    "Next offset to apply, as committed in PostgreSQL",
    ["topic", "partition"],
)

CONSUMER_LAG = Gauge(
    "gpuledger_consumer_lag_records",
    "Records of the partition after the last batch written (the broker's high watermark minus the next offset)",
    ["topic", "partition"],
)


def serve_metrics(port: int, host: str = "0.0.0.0") -> None:
    """Serve this process's metrics on http://HOST:PORT/metrics (OSError if taken)."""
    prometheus_client.start_http_server(port, addr=host)
