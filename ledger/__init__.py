"""gpuledger: usage metering and cross-billing ledger for an alliance of GPU clouds.

The pure domain lives in this package's modules `periods`, `catalog`, `events`,
`metering` and `rating`: they import no database, Kafka or web code. `store` is the
PostgreSQL adapter, `cli` the command line, `dev` the embedded local stack.
"""
