"""Which usage topics a worker reads, and whether it trusts their records' timestamps.

SPEC.md, "Who sent it" and the receipt time: a worker reads the operator's usage topic
and every member's own topic (`gpu.usage.<member>`), members added later included, and
judges each record at its receipt time, which must be the broker's (`LogAppendTime`), not
a producer's (`CreateTime`: a member could date its records 18 months back, or into the
horizon, at will).

- At start, every usage topic on the broker is checked: the operator's usage topic must
  exist and be `LogAppendTime`, or the worker refuses to start; a member's topic that is
  not is left unread (its records wait in Kafka, nothing is lost) and counted in
  `gpuledger_usage_topics{state="refused"}`, so one misconfigured topic stops no one else.
- Every WATCH_EVERY_SECONDS the broker's topics are listed again: a new member's topic
  (created by `gpuledger topic ensure` or a catalog load) is read without a restart, as
  is a refused one once its configuration is fixed. Every worker looks at the same
  instants of the wall clock (multiples of WATCH_EVERY_SECONDS), so the workers of a
  group resubscribe together: adding a member costs the group one rebalance, not one
  per worker (measured with two workers: two rebalances 7 s apart before).
- A worker told it runs against a development broker (`dev up` says so for the embedded
  one, which ignores LogAppendTime) trusts every topic's timestamps: there the CLI and
  the API set them. Otherwise a record that the broker did not stamp (its timestamp type
  is not LogAppendTime, as on a broker that ignores the setting) is judged at the
  worker's clock (`streams.app.to_record`).

Faust's consumer cannot subscribe to a pattern ("XXX pattern does not work", its aiokafka
driver), so new topics are added as channels to its conductor, which resubscribes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ledger.domain.errors import LedgerError
from schemas.wire import sender_of
from streams import metrics
from streams.topics import LOG_APPEND_TIME

log = logging.getLogger(__name__)

WATCH_EVERY_SECONDS = 10.0
# Faust waits 45 s after a subscription change before it resubscribes (so that agents
# starting together cause one rebalance); the ledger adds topics one watch at a time.
RESUBSCRIBE_AFTER_SECONDS = 1.0
LOG_APPEND = 1  # Kafka's timestamp type of a record the broker stamped (0: its producer's)


def until_next_watch(now: float, every: float = WATCH_EVERY_SECONDS) -> float:
    """Seconds from `now` (wall clock) to the next multiple of `every`, never 0."""
    return every - (now % every)


class TopicRefused(LedgerError):
    """The operator's usage topic is missing or lets producers date their records."""

    exit_code = 2


@dataclass
class Subscription:
    """The usage topics a worker reads (`read`), and those it leaves unread (`refused`)."""

    usage_topic: str
    trust_producer_time: bool = False
    read: set[str] = field(default_factory=set)
    refused: dict[str, str | None] = field(default_factory=dict)  # topic -> its timestamp type

    def trusted(self, timestamp_type: str | None) -> bool:
        return self.trust_producer_time or timestamp_type == LOG_APPEND_TIME

    def first(self, found: dict[str, str | None]) -> list[str]:
        """The topics to read from the start, given the broker's usage topics and their
        timestamp types; TopicRefused when the operator's own topic is not fit."""
        if self.usage_topic not in found and not self.trust_producer_time:
            raise TopicRefused(
                f"the usage topic {self.usage_topic} does not exist: create it with `gpuledger topic ensure`"
            )
        if self.usage_topic in found and not self.trusted(found[self.usage_topic]):
            raise TopicRefused(
                f"the usage topic {self.usage_topic} has message.timestamp.type "
                f"{found[self.usage_topic] or 'unset'}: producers could date their own records; set it to "
                f"{LOG_APPEND_TIME} (gpuledger topic ensure creates topics so), or run against a development "
                "broker (GPULEDGER_DEVELOPMENT_BROKER=1, as `gpuledger dev up` does)"
            )
        return [self.usage_topic, *self.update(found)]

    def update(self, found: dict[str, str | None]) -> list[str]:
        """The member topics to start reading now (new, or fixed since they were refused)."""
        added = []
        for topic, timestamp_type in sorted(found.items()):
            if topic in self.read or sender_of(self.usage_topic, topic) is None:
                continue
            if self.trusted(timestamp_type):
                if self.refused.pop(topic, "absent") != "absent":
                    log.warning("usage topic %s is now %s: reading it", topic, timestamp_type)
                added.append(topic)
            elif topic not in self.refused:
                log.error(
                    "usage topic %s has message.timestamp.type %s: left unread until it is %s "
                    "(its records wait in Kafka)", topic, timestamp_type or "unset", LOG_APPEND_TIME,
                )
                self.refused[topic] = timestamp_type
        self.read.update(added)
        self.read.add(self.usage_topic)
        metrics.USAGE_TOPICS.labels("read").set(len(self.read))
        metrics.USAGE_TOPICS.labels("refused").set(len(self.refused))
        return added
