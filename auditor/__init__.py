"""The auditor's independent verifier of a gpuledger audit bundle.

It shares no code with the code that produced the numbers: it reads the bundle's files
and recomputes everything from SPEC.md's rules with the standard library and
`cryptography` only. The entry point is `auditor.verify.verify_bundle`; the command
line is `python -m auditor.verify DIR --public-key FILE`.

(This package deliberately imports nothing at import time, so that
`python -m auditor.verify` runs the module exactly once.)
"""
