"""The ledger's store in memory: the services without a database (tests, models)."""
