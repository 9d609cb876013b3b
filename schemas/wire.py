"""What travels on the usage topics besides the event itself: names, headers, batch layout.

SPEC.md, "How events arrive". The alliance operator's usage topic (`gpu.usage`), and each
member's own topic `<usage topic>.<member id>`, which only that member writes: an event on
a member's topic comes from that member (`sender_of`). A record carries one event (CloudEvents structured mode)
or, with the `content-type` header below, a batch: a JSON array, each element one
received event. gpuledger's own producers write batches one element per line
(`encode_batch`), so a worker can hand each element's original bytes to a dead letter
(`split_batch`); any other layout of a JSON array is still a valid batch.
"""

from __future__ import annotations

import re

import orjson

USAGE_TOPIC = "gpu.usage"  # SPEC.md: "named gpu.usage unless configured otherwise"
_MEMBER_ID = re.compile(r"[a-z][a-z0-9-]{1,31}")  # SPEC.md, "Parties"

CONTENT_TYPE_HEADER = "content-type"
SINGLE_CONTENT_TYPE = b"application/cloudevents+json"
BATCH_CONTENT_TYPE = b"application/cloudevents-batch+json"
# CloudEvents binary content mode (SPEC.md, "Binary content mode"): a record with this
# header carries one event whose attributes are its `ce_` headers and whose `data` is its
# value. The HTTP binding's are `ce-` headers.
KAFKA_ATTRIBUTE_PREFIX = "ce_"
BINARY_MODE_HEADER = KAFKA_ATTRIBUTE_PREFIX + "specversion"
HTTP_ATTRIBUTE_PREFIX = "ce-"
HTTP_BINARY_MODE_HEADER = HTTP_ATTRIBUTE_PREFIX + "specversion"
# gpuledger's own: the id under which `ingest --wait` and the API count their events.
INGEST_HEADER = "gpuledger-ingest"

MAX_EVENT_BYTES = 1 << 20  # SPEC.md, check 1: larger events are malformed, unparsed
# The most a batch record may carry; a larger one is refused whole, as one event.
MAX_BATCH_EVENTS = 10_000
MAX_BATCH_RECORD_BYTES = 16 << 20
# The most a compressed Kafka record batch may decompress to: twice the largest record
# the ledger reads (a producer's batch holds that record and its neighbours). A worker
# stops decompressing there, so no batch, however small compressed, costs it more; the
# batch is then one received event, `malformed` (ledger.domain.records).
MAX_DECOMPRESSED_BATCH_BYTES = 2 * MAX_BATCH_RECORD_BYTES


def member_topic(usage_topic: str, member: str) -> str:
    """The topic a member's own producers write to: `gpu.usage.sakura`."""
    return f"{usage_topic}.{member}"


def is_usage_topic(usage_topic: str, topic: str) -> bool:
    """The usage topic itself, or a member's topic of it."""
    return topic == usage_topic or sender_of(usage_topic, topic) is not None


def sender_of(usage_topic: str, topic: str | None) -> str | None:
    """The member whose own topic `topic` is; None for the usage topic itself (the operator's)
    and for anything else."""
    if topic is None or not topic.startswith(usage_topic + "."):
        return None
    member = topic[len(usage_topic) + 1:]
    return member if _MEMBER_ID.fullmatch(member) else None


def usage_topic_pattern(usage_topic: str) -> str:
    """The regular expression of the usage topic and every member's topic."""
    return "^" + re.escape(usage_topic) + r"(\.[a-z][a-z0-9-]{1,31})?$"


def is_batch(content_type: bytes) -> bool:
    """Whether a record's content-type header names a CloudEvents batch (parameters ignored)."""
    return content_type.split(b";")[0].strip().lower() == BATCH_CONTENT_TYPE


def encode_batch(raws: list[bytes]) -> bytes:
    """A batch record's value whose elements keep their bytes (see `split_batch`)."""
    return b"[\n" + b",\n".join(raws) + b"\n]"


def split_batch(value: bytes) -> list[tuple[bytes, object]] | None:
    """The elements of a batch written by `encode_batch`, each with its bytes and value.

    `[\\n e1,\\n e2 ... \\n]` where every piece parses alone is exactly the array of those
    pieces. Any other layout returns None: the caller parses the array whole.
    """
    if not (value.startswith(b"[\n") and value.endswith(b"\n]")):
        return None
    body = value[2:-2]
    if not body:
        return []
    elements = []
    for piece in body.split(b",\n"):
        try:
            elements.append((piece, orjson.loads(piece)))
        except orjson.JSONDecodeError:
            return None
    return elements
