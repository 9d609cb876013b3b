"""The processes that make a period's documents for `ledger.documents.output.write`.

Workers are spawned (a fresh interpreter, never a fork of a process that ran an event
loop and a database driver), one per CPU, and each is started once with what every
invoice of the period reads: the statement, the catalog and the date of issue (the
period's `PeriodDocuments` without what only the reports read: the billed hours, the
earlier months, the activity, the pseudonym key), the output folder, its fonts and
templates made once (`render.warm`). A task is one document: the worker makes an
invoice's content from the statement, or is handed a report's (made here, from what only
this process holds), lays it out, writes its files and sends back nothing.

The reports are handed out first: one takes as long as a few hundred invoices (its tables
list every tenant invoice and line of its member), and last they would end the run on
one core. At most `IN_FLIGHT` documents per process are queued, so that a report's
content waits here until a worker can take it. The first document that fails stops the
run: the queued ones are dropped, the workers ended, the error raised as the worker
raised it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path

from ledger.documents import render
from ledger.documents.document import write_files
from ledger.domain.errors import ServiceUnavailable
from ledger.domain.invoices import Planned
from ledger.domain.report_activity import Activity
from ledger.service.documents import PeriodDocuments

INVOICES = ("tenant_invoice", "member_invoice")  # what a worker makes from the statement alone
IN_FLIGHT = 4  # documents queued per process

# In a worker process: the period's shared part and where its files go.
_worker: dict = {}


def processes_for(count: int, processes: int | None) -> int:
    """How many processes make `count` documents: `processes`, or one per CPU this
    process may run on; never more than there are documents."""
    if processes is None:
        processes = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(processes, count))


def made(documents: PeriodDocuments, out: Path, processes: int | None = None) -> Iterator[Planned]:
    """Make every document of `documents` under `out`; yields each one once its files are
    written, in the plan's order."""
    processes = processes_for(len(documents.planned), processes)
    if processes == 1:
        return in_this_process(documents, out)
    return _in_pool(documents, out, processes)


def in_this_process(documents: PeriodDocuments, out: Path) -> Iterator[Planned]:
    """Each document made here, one after the other, in the plan's order."""
    for planned in documents.planned:
        write_files(documents, planned, out)
        yield planned


def shared(documents: PeriodDocuments) -> PeriodDocuments:
    """What every invoice of the period reads, and nothing else: what a worker starts with."""
    return replace(
        documents, planned=[], pseudonym_key=b"", earlier=[], usages=[], balances={},
        capacity=None, capacity_usages=[], activity=Activity(),
    )


def _start(documents: PeriodDocuments, out: Path) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the command's: it stops the pool
    _worker.update(documents=documents, out=out)
    render.warm()


def _make(planned: Planned, content: dict | None) -> None:
    write_files(_worker["documents"], planned, _worker["out"], content)


def _handed_out(documents: PeriodDocuments) -> list[int]:
    """The plan's documents in the order they are handed to the workers: reports first."""
    planned = documents.planned
    return sorted(range(len(planned)), key=lambda index: planned[index].kind in INVOICES)


def _in_pool(documents: PeriodDocuments, out: Path, processes: int) -> Iterator[Planned]:
    planned = documents.planned
    pool = ProcessPoolExecutor(
        processes, mp_context=multiprocessing.get_context("spawn"),
        initializer=_start, initargs=(shared(documents), out),
    )
    futures: dict[int, Future] = {}
    running: set[Future] = set()
    cursor = 0  # the first document of the plan not yet yielded
    try:
        for index in _handed_out(documents):
            while len(running) >= IN_FLIGHT * processes:
                running = _wait_for_one(running)
            content = None if planned[index].kind in INVOICES else documents.content(planned[index])
            futures[index] = pool.submit(_make, planned[index], content)
            running.add(futures[index])
            while cursor in futures and futures[cursor].done():
                futures.pop(cursor).result()
                yield planned[cursor]
                cursor += 1
        for index in range(cursor, len(planned)):
            while not futures[index].done():
                running = _wait_for_one(running)
            futures.pop(index).result()
            yield planned[index]
    except BrokenProcessPool as exc:
        _stop(pool)
        raise ServiceUnavailable("a process making documents stopped (killed, or out of memory): run the command again") from exc
    except BaseException:  # a document failed, the caller stopped early, Ctrl-C
        _stop(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _stop(pool: ProcessPoolExecutor) -> None:
    """End the workers now rather than after the documents they are making (a report
    takes up to a minute). The executor has no public way to; its process table is read."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()


def _wait_for_one(running: set[Future]) -> set[Future]:
    """Wait until one of `running` is done; raise its error if it failed; the rest."""
    done, left = wait(running, return_when=FIRST_COMPLETED)
    for future in done:
        future.result()
    return left
