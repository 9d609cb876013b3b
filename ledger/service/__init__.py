"""The use cases: what the ledger does, written against the ports of `ledger.domain.ports`.

Intake (deciding a batch of the usage topic), the books (statements, closing, checking
the journal), catalog loads, dead letters and their replay, ingest of a file, usage as
it happens, tokens, auditor bundles and the key that signs them. Nothing here imports a
driver or a framework: the adapters (`ledger.postgres`, `streams`, `ledger.http`,
`ledger.cli`) call in, and pass the store and publisher they made.
"""
