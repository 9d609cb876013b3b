"""The usage API: the only package that imports FastAPI and Starlette.

`app.create_app` wires the routes (one module per resource in `routes/`), the one error
mapping (`errors`), bearer-token callers (`auth`) and the metrics middleware
(`metrics`). Routes call the services; the store and the publisher come from whoever
creates the app (`gpuledger api`, the composition root).
"""
