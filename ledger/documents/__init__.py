"""Documents people read: qualified invoices, settlement reports, the capacity report.

The one room that imports the template, PDF and chart libraries (Jinja2, WeasyPrint,
matplotlib). It lays out the content that `ledger.service.documents` gathers and never
decides a figure: `render` makes a document's HTML and PDF, `charts` its SVG charts,
`output` writes a period's files and their manifest.
"""
