"""The Kafka side of gpuledger: the Faust app that meters usage, and the producer of `ingest`.

Faust and aiokafka are imported here and nowhere in the domain.
"""
