"""Where a worker waits: every asyncio task's chain of awaits, on SIGUSR2 (to its log).

asyncio's own task stacks show one frame per task; a worker stuck in an await needs
the whole chain (the agent, Faust's stream, the ledger's transaction, the driver).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys

log = logging.getLogger(__name__)
MAX_DEPTH = 60


def _unwrap(awaitable):
    """What a `coroutine.__await__()` wrapper waits on (it has no attribute that says)."""
    if type(awaitable).__name__ == "coroutine_wrapper":
        inner = [r for r in gc.get_referents(awaitable) if hasattr(r, "cr_frame")]
        return inner[0] if inner else awaitable
    return awaitable


def await_chain(awaitable) -> list[str]:
    frames = []
    for _ in range(MAX_DEPTH):
        awaitable = _unwrap(awaitable)
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "ag_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is None:
            if awaitable is not None:
                frames.append(f"  (awaiting {awaitable!r})"[:300])
            break
        frames.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "ag_await", None) or getattr(awaitable, "gi_yieldfrom", None)
    return frames


def dump_tasks(state=None) -> None:
    for task in asyncio.all_tasks():
        print(f"task {task.get_name()}:", *await_chain(task.get_coro()), sep="\n", file=sys.stderr)
    if state is not None:
        try:
            print("consumer:", state(), file=sys.stderr)
        except Exception as exc:  # noqa: BLE001 - a diagnostic must never stop a worker
            print(f"consumer: state unavailable ({exc!r})", file=sys.stderr)
    sys.stderr.flush()


def install(loop: asyncio.AbstractEventLoop, state=None) -> None:
    """SIGUSR2 dumps every task's awaits, and `state()` (the consumer's flow) when given."""
    loop.add_signal_handler(signal.SIGUSR2, dump_tasks, state)
