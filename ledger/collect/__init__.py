"""`gpuledger collect`: the agent on each GPU node that reports what the ledger bills.

Once a second it reads the node's GPUs (NVML, `gpus`) and who holds each one (an
attribution source: `static`, `kubernetes`), gathers each GPU's allocated seconds per
minute (`usage`, pure), writes a minute's usage events into an on-disk spool (`spool`,
SQLite) in the same transaction that forgets its samples, and sends the spool to the
member's own topic (`sending`) until the broker acknowledges it. `agent` is the loop,
`metrics` its Prometheus metrics and health endpoint. docs/collector.md is the manual.
"""
