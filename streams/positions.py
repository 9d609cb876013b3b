"""Reading a partition again from the ledger's position when its records do not follow it.

The ledger applies a partition's records in offset order and stores the next offset
(`ledger.service.intake`, step 2); a record is applied only if the consumer read every
offset from the stored position up to it. When a take's records of a partition start
further on (a fetch made before a rebalance, delivered after it, while Faust sought the
partition back to its committed offset; Kafka's committed offset ahead of the ledger
after a database restore), the intake holds them back and reports a gap. This module
then forgets what is queued of that partition and seeks it to the stored position, so
the records in between are read, in order, before anything after them.

If the same gap comes back after a seek, Kafka may no longer hold those offsets
(retention deleted records the ledger never read): when the partition's log now starts
after the position, the ledger reads on from the log's start, and says how many offsets
it never saw (`gpuledger_log_offsets_missing_total`, an error in the log).
"""

from __future__ import annotations

import logging

from faust.types import TP

from ledger.domain.records import BatchResult, Record
from ledger.service.intake import Intake
from streams import metrics

log = logging.getLogger(__name__)


def without_held(chunk: list[Record], result: BatchResult) -> list[Record]:
    """A take's next transaction without the records of partitions a gap holds back."""
    if not result.gaps:
        return chunk
    kept = [r for r in chunk if (r.topic, r.partition) not in result.gaps]
    result.held_records += len(chunk) - len(kept)
    return kept


def acked(message, result: BatchResult) -> bool:
    """Whether a take's message may be acked: not one of a partition read again."""
    return (message.topic, message.partition) not in result.gaps


class Rereader:
    """Seeks partitions back to the ledger's positions (one per worker)."""

    def __init__(self, consumer, intake: Intake) -> None:
        self.consumer = consumer
        self.intake = intake
        self.last_gap: dict[tuple[str, int], int] = {}

    async def read_again(self, gaps: dict[tuple[str, int], int]) -> None:
        for (topic, partition), position in sorted(gaps.items()):
            tp = TP(topic, partition)
            target = position
            if self.last_gap.get((topic, partition)) == position:
                target = await self._log_start_after(tp, position)
            self.last_gap[(topic, partition)] = position
            batches = getattr(self.consumer, "batches", None)
            if batches is not None:
                batches.drop({tp})
            metrics.POSITION_GAPS.inc()
            log.warning("%s[%d]: records after offset %d arrived before it; reading again from %d",
                        topic, partition, position, target)
            try:
                await self.consumer.seek_wait({tp: target})
            except Exception:  # noqa: BLE001 - revoked meanwhile, say: its next owner reads it
                log.warning("could not seek %s[%d] to %d", topic, partition, target, exc_info=True)

    async def _log_start_after(self, tp: TP, position: int) -> int:
        """The same gap again: where Kafka's log of the partition starts, if after `position`."""
        try:
            start = (await self.consumer.earliest_offsets(tp)).get(tp)
        except Exception:  # noqa: BLE001 - ask again at the next gap
            log.warning("could not read where %s's log starts", tp, exc_info=True)
            return position
        if start is None or start <= position:
            return position
        log.error("%s[%d]: Kafka no longer holds offsets %d..%d, which the ledger never read: "
                  "their events were never metered", tp.topic, tp.partition, position, start - 1)
        metrics.LOG_OFFSETS_MISSING.inc(start - position)
        self.intake.log_starts[(tp.topic, tp.partition)] = start
        return start
