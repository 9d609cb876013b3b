"""SQL migrations, applied in file-name order by `ledger.store.migrate`.

Each file runs once, in one transaction, and is recorded in `schema_migrations`; a
file that has run is never edited: a change is a new file.
"""
