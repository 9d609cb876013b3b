"""The consumer group of the workers, topic administration, and whether a broker answers.

The usage topic's default name and the member topics' naming are wire contracts
(`schemas.wire`); which usage topic a deployment uses is a setting (`ledger.settings`).
Every usage topic, the operator's and each member's, is created with USAGE_TOPIC_CONFIG;
`timestamp_types` is how a worker checks, before it trusts a topic's record timestamps,
that the broker sets them (SPEC.md: the receipt time is the broker's).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaClient
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from ledger.domain.errors import ServiceUnavailable
from schemas.wire import MAX_BATCH_RECORD_BYTES, is_usage_topic, member_topic

METER_GROUP = "gpuledger-meter"
TIMESTAMP_TYPE = "message.timestamp.type"
LOG_APPEND_TIME = "LogAppendTime"
# What a usage topic must be for the ledger's promises: the broker dates every record
# (no producer chooses its receipt time), and a record may be as large as an API request.
# The test broker (Tansu) accepts these settings, reports them, and ignores LogAppendTime
# (INFRA.md): its records keep their producers' timestamps.
USAGE_TOPIC_CONFIG = {
    TIMESTAMP_TYPE: LOG_APPEND_TIME,
    "max.message.bytes": str(MAX_BATCH_RECORD_BYTES + (1 << 20)),
}


async def _admin(bootstrap: str, options: dict | None) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000, **(options or {}))
    try:
        await admin.start()
    except (KafkaError, OSError) as exc:
        await admin.close()
        raise ServiceUnavailable(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    return admin


async def ensure_topics(
    bootstrap: str, topics: Iterable[str], partitions: int, replication_factor: int = 1,
    options: dict | None = None,
) -> list[str]:
    """Create each topic, configured as USAGE_TOPIC_CONFIG, if it does not exist (an
    existing one is left as it is); the names of those created."""
    admin = await _admin(bootstrap, options)
    try:
        existing = set(await admin.list_topics())
        created = []
        for topic in sorted(set(topics) - existing):
            try:
                await admin.create_topics([
                    NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor,
                             topic_configs=USAGE_TOPIC_CONFIG)
                ])
                created.append(topic)
            except TopicAlreadyExistsError:
                pass
        return created
    except KafkaError as exc:
        raise ServiceUnavailable(f"Kafka at {bootstrap} refused to create topics: {exc}") from exc
    finally:
        await admin.close()


async def ensure_topic(
    bootstrap: str, topic: str, partitions: int, replication_factor: int = 1, options: dict | None = None
) -> None:
    """Create one usage topic if it does not exist (see `ensure_topics`)."""
    await ensure_topics(bootstrap, [topic], partitions, replication_factor, options)


def usage_topics_of(usage_topic: str, members: Iterable[str]) -> list[str]:
    """The usage topic and the topic of every member: what `topic ensure` creates."""
    return [usage_topic, *(member_topic(usage_topic, m) for m in sorted(members))]


async def usage_topics_on_broker(bootstrap: str, usage_topic: str, options: dict | None = None) -> dict[str, str | None]:
    """The usage topic and the member topics that exist on the broker, each with its
    `message.timestamp.type` as the broker reports it (None: it reports none)."""
    admin = await _admin(bootstrap, options)
    try:
        topics = sorted(t for t in await admin.list_topics() if is_usage_topic(usage_topic, t))
        return await _timestamp_types(admin, topics)
    except KafkaError as exc:
        raise ServiceUnavailable(f"cannot read the usage topics' settings from Kafka at {bootstrap}: {exc}") from exc
    finally:
        await admin.close()


async def _timestamp_types(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, str | None]:
    if not topics:
        return {}
    found: dict[str, str | None] = dict.fromkeys(topics)
    # Every setting, not only the one needed: the test broker closes the connection on a
    # filtered request.
    resources = [ConfigResource(ConfigResourceType.TOPIC, topic) for topic in topics]
    for response in await admin.describe_configs(resources):
        for resource in response.to_object()["resources"]:
            if resource["error_code"]:  # not allowed to see it, say: unknown, so not trusted
                continue
            for entry in resource["config_entries"]:
                if entry["config_names"] == TIMESTAMP_TYPE:
                    found[resource["resource_name"]] = entry["config_value"]
    return found


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
