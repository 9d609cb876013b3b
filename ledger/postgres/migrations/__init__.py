"""The ledger's schema, as numbered SQL files applied in name order by `gpuledger db migrate`.

A file, once applied anywhere, never changes: a change is a new file. Each applied file's
SHA-256 is recorded, and `migrate` refuses to run against a database where an applied
file's recorded digest differs from the file shipped (someone edited history).
"""
