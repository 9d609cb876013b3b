"""The phases of `python -m bench.pipeline`, one module each, all on the same usage topic.

a. `ingest`: `gpuledger ingest FILE --wait`, as a user runs it.
b. `single_records`: single-event records from a plain aiokafka producer (uncompressed),
   end to end.
c. `raw_consumer`: a plain aiokafka consumer reading phase b's records.
d. `ceiling`: stock Faust agents (`bench.faust_ceiling`) counting phase b's records.
e. `backlog`: a backlog drained by workers that were stopped while it was published.

Each returns the figures of its phase as a dict; `bench.pipeline` runs them in the
order a, e, b, c, d and measures CPU and memory around them.
"""

# What phases b and d produce with: the ingest producer's settings, uncompressed, as a
# member's plain producer sends records (`gpuledger ingest` compresses its own with zstd).
PLAIN_PRODUCER = {"compression_type": None}


def rounded(value: float | None) -> float | None:
    """A time in seconds to the hundredth, or None when it was not seen."""
    return None if value is None else round(value, 2)
