"""The agent's clock: the real one, or a fake node's that runs faster than time.

A fake node's clock starts where its scenario (or, after a restart, the spool's cursor)
says and runs `speed` seconds per real second, so a test of five minutes of usage takes
seconds; the agent samples each of its seconds in turn (`sequential`), late if the
machine is busy, so what a fake node bills does not depend on the machine's load. The events still carry these times, so a test puts them where the ledger's rules
accept them (within the acceptance horizon, never in the future).
"""

from __future__ import annotations

import asyncio
import time


class RealClock:
    speed = 1.0
    sequential = False  # a second missed is missed (filled if short: ledger.collect.usage)

    def now(self) -> float:
        return time.time()

    async def sleep_until(self, instant: float, stop: asyncio.Event) -> None:
        await _sleep(max(0.0, instant - self.now()), stop)


class FastClock:
    sequential = True  # the agent samples every second in turn, however late

    def __init__(self, start: float, speed: float) -> None:
        assert speed > 0
        self.start, self.speed, self.origin = start, speed, time.monotonic()

    def now(self) -> float:
        return self.start + (time.monotonic() - self.origin) * self.speed

    async def sleep_until(self, instant: float, stop: asyncio.Event) -> None:
        await _sleep(max(0.0, (instant - self.now()) / self.speed), stop)


async def _sleep(seconds: float, stop: asyncio.Event) -> None:
    """Sleep, or less if the agent is told to stop."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
