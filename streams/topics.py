"""The consumer group of the workers, topic administration, and whether a broker answers.

The usage topic's default name is a wire contract (`schemas.wire.USAGE_TOPIC`); which
topic a deployment uses is a setting (`ledger.settings`).
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaClient
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from ledger.domain.errors import ServiceUnavailable
from schemas.wire import MAX_BATCH_RECORD_BYTES

METER_GROUP = "gpuledger-meter"
# What the usage topic must be for the ledger's promises: the broker dates every record
# (no producer chooses its receipt time), and a record may be as large as an API request.
# The test broker (Tansu) accepts these settings and ignores LogAppendTime (INFRA.md).
USAGE_TOPIC_CONFIG = {
    "message.timestamp.type": "LogAppendTime",
    "max.message.bytes": str(MAX_BATCH_RECORD_BYTES + (1 << 20)),
}


async def ensure_topic(
    bootstrap: str, topic: str, partitions: int, replication_factor: int = 1, options: dict | None = None
) -> None:
    """Create the usage topic, configured as USAGE_TOPIC_CONFIG, if it does not exist (an
    existing one is left as it is)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000, **(options or {}))
    try:
        await admin.start()
    except (KafkaError, OSError) as exc:
        raise ServiceUnavailable(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    try:
        existing = await admin.list_topics()
        if topic not in existing:
            try:
                await admin.create_topics([
                    NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor,
                             topic_configs=USAGE_TOPIC_CONFIG)
                ])
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


async def broker_ready(bootstrap: str, timeout: float) -> bool:
    """Whether a broker at bootstrap answers a metadata request within timeout seconds."""
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap, request_timeout_ms=max(int(timeout * 1000), 1000)
    )
    try:
        await asyncio.wait_for(client.bootstrap(), timeout)
        return bool(client.cluster.brokers())
    except (TimeoutError, KafkaError, OSError):
        return False
    finally:
        await client.close()
