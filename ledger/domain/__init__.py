"""The pure domain: the rules of SPEC.md as values and functions.

Instants and periods, the catalog, usage events and their checks, metering (which
GPU-seconds an event bills), rating (lines, invoices, netting), the journal and its hash
chain, and who may see what. Nothing here does I/O or imports a driver or a framework.
"""
