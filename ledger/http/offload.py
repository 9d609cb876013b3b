"""Work the API does away from its event loop: statements, queries, documents, in processes.

A statement or usage query over many tenants, or a PDF, is seconds of CPU. Done on the
event loop it stalls every other request, /healthz included; done in a thread it still
does, because a CPU-bound thread holds the GIL, and long C calls (orjson.dumps of a
37 MB statement, sorting 100,000 lines) hold it whole: measured on the 2-core machine,
/healthz answered at p99 159 ms while statements were computed in a thread, 18 ms while
they were computed in a process (and 3 s on the loop). So the API keeps pools of worker
processes; each opens its own store once (the composition root hands over a factory
that can cross to another process) and runs tasks: top-level coroutine functions that
take the store first and return something small or bytes.

`InlinePool` runs the same tasks on the API's own store and loop, for a store that
cannot be opened in another process (the in-memory store the tests use).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from ledger.domain.errors import ServiceUnavailable
from ledger.domain.ports import Store

log = logging.getLogger(__name__)

T = TypeVar("T")
StoreFactory = Callable[[], Awaitable[Store]]  # picklable, e.g. functools.partial(PostgresStore.connect, url, 2)
Task = Callable[..., Awaitable[T]]  # a top-level coroutine function: task(store, *args)

PARENT_CHECK_SECONDS = 1.0
CLOSE_SECONDS = 10.0

# In a worker process: its event loop, how it opens its store, and the store once open.
_worker: dict[str, Any] = {}


def _start_worker(open_store: StoreFactory) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the API's to handle; it stops the pool
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), name="parent-watch", daemon=True).start()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    _worker.update(loop=loop, open_store=open_store, store=None)


def _exit_with_parent(parent: int) -> None:
    """A worker whose API process is gone (killed: no shutdown told it) exits, rather than
    wait forever for work with its database connections open."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def _run_in_worker(task: Task, args: tuple, pause_gc: bool = False) -> Any:
    # A statement builds a few hundred thousand objects that live until it is sent and
    # make no cycles: the cyclic collector, walking them again and again as they pile
    # up, was a fifth of its time. It runs again once the task is done.
    if pause_gc:
        gc.disable()
    try:
        return _worker["loop"].run_until_complete(_with_store(task, args))
    finally:
        gc.enable()


async def _with_store(task: Task, args: tuple) -> Any:
    store = _worker["store"]
    if store is None:
        store = _worker["store"] = await _worker["open_store"]()
    try:
        return await task(store, *args)
    except ServiceUnavailable:
        _worker["store"] = None  # opened again by the next task: the database may be back
        with contextlib.suppress(Exception):
            await store.close()
        raise


async def _nothing(store: Store) -> None:
    """A task that only opens the store: starts a process before it is needed."""


class ProcessPool:
    """`processes` worker processes, each with its own store; tasks queue in order.
    `pause_gc`: no cyclic garbage collection while a task runs (for tasks that make no
    cycles, like statements)."""

    def __init__(self, name: str, processes: int, open_store: StoreFactory, pause_gc: bool = False) -> None:
        self.name = name
        self.processes = processes
        self.open_store = open_store
        self.pause_gc = pause_gc
        self.executor = self._executor()

    def _executor(self) -> ProcessPoolExecutor:
        # spawn: a fresh interpreter, never a fork of a process with an event loop and threads.
        return ProcessPoolExecutor(
            self.processes, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker, initargs=(self.open_store,),
        )

    async def run(self, task: Task[T], *args) -> T:
        """`task(store, *args)` in a worker process; its LedgerError reaches the caller as raised."""
        executor = self.executor
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, _run_in_worker, task, args, self.pause_gc)
        except BrokenProcessPool as exc:
            # A worker died (killed, out of memory): start the pool again for the next request.
            log.error("the %s pool lost a process; starting it again", self.name)
            if self.executor is executor:
                self.executor = self._executor()
                executor.shutdown(wait=False, cancel_futures=True)
            raise ServiceUnavailable(f"the {self.name} worker stopped; ask again") from exc

    def warm(self) -> None:
        """Start a worker now (a spawned interpreter takes most of a second to import)."""
        self.executor.submit(_run_in_worker, _nothing, ())

    async def close(self) -> None:
        """Stop the workers once their tasks are done (at most CLOSE_SECONDS: a worker
        left behind exits when it sees the API gone)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.to_thread(self.executor.shutdown, True, cancel_futures=True), CLOSE_SECONDS)


class InlinePool:
    """The same tasks on the API's own store, on its event loop."""

    def __init__(self, name: str, store: Store) -> None:
        self.name = name
        self.store = store

    async def run(self, task: Task[T], *args) -> T:
        return await task(self.store, *args)

    def warm(self) -> None:
        pass

    async def close(self) -> None:
        pass
