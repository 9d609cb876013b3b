"""gpuledger: usage metering and cross-billing ledger for an alliance of GPU clouds.

One package per room (docs/architecture.md): `domain` (the rules, pure), `service` (the
use cases, over the ports of `domain.ports`), `postgres` and `memory` (the stores),
`http` (the usage API), `cli` (the command line, the composition root), `dev` (the local
stack), and `settings` (where the services are).
"""
