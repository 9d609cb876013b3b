"""Wire contracts: pydantic models of what crosses gpuledger's edges, and no logic.

`schemas/json/` holds the JSON Schema files generated from these models.
"""
