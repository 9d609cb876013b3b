"""The `gpuledger` command line: the composition root.

Each command builds what it needs (the PostgreSQL store, the Kafka publisher, the local
stack) from one `Settings` and calls the services; no SQL and no rules live here.
Commands that print JSON write exactly one document and a newline to stdout; progress,
logs and notices go to stderr. Every expected failure is one line on stderr and the
error's exit code (`ledger.domain.errors`): 2 bad input, 3 a service cannot be reached,
4 verification failed, 1 anything else.
"""
