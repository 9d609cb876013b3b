"""`python -m ledger.cli`: how the local stack starts workers and the API."""

from ledger.cli.main import main

main()
