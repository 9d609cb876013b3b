"""Benchmarks of gpuledger (not tests: they print figures and never fail on timing).

`python -m bench.pipeline` (or `make bench`): end-to-end throughput and memory of the
local pipeline, NDJSON -> Kafka -> Faust workers -> PostgreSQL.
"""
