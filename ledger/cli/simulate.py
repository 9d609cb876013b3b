"""`gpuledger simulate`: a live fleet's usage, in real time, through Kafka and the workers."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from contextlib import contextmanager

import click

from ledger.cli import wiring
from ledger.cli.ingest import broker_lost
from ledger.cli.output import echo_json, notice
from ledger.cli.wiring import Context, pass_context, run
from ledger.domain.errors import ServiceUnavailable
from ledger.domain.fleet import MAX_GPUS, Fleet
from ledger.domain.simulation import Counts, Simulation, SimulationConfig
from ledger.service import ingest as ingest_service
from ledger.service import simulate as simulate_service
from ledger.settings import Settings

SHARE = click.FloatRange(0, 1)


@click.command()
@click.option("--gpus", type=click.IntRange(1, MAX_GPUS), help="GPUs to simulate (default: every registered GPU in service; 8 synthesised ones when none is registered and the catalog allows it).")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="Events per second in all, about (default: one report per GPU-second, i.e. real time).")
@click.option("--duration", type=click.IntRange(min=1), help="Stop after this many seconds (default: run until Ctrl-C or SIGTERM).")
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed picks the same GPUs and repeats its pattern of sessions (event ids differ per run).")
@click.option("--mean-session", type=click.IntRange(min=1), default=600, show_default=True, help="Mean seconds a tenant keeps a GPU.")
@click.option("--mean-idle", type=click.IntRange(min=1), default=60, show_default=True, help="Mean seconds a GPU idles between tenants.")
@click.option("--late", type=SHARE, default=0.05, show_default=True, help="Share of reports delivered 1 to 10 minutes late.")
@click.option("--resend", type=SHARE, default=0.02, show_default=True, help="Share of reports sent twice (duplicates).")
@click.option("--second-collector", type=SHARE, default=0.25, show_default=True, help="Share of GPUs whose seconds a second collector reports again.")
@click.option("--progress", "progress_seconds", type=click.FloatRange(min=0.5), default=5, show_default=True, help="Seconds between progress lines on stderr.")
@click.option("--wait", is_flag=True, help="At the end, wait until the ledger decided every event sent.")
@click.option("--timeout", type=click.FloatRange(min=0), default=0, help="With --wait: give up after this many seconds (0: never).")
@pass_context
def simulate(
    obj: Context, gpus: int | None, rate: float | None, duration: int | None, seed: int, mean_session: int,
    mean_idle: int, late: float, resend: float, second_collector: float, progress_seconds: float,
    wait: bool, timeout: float,
) -> None:
    """Publish a simulated fleet's usage to the usage topic in real time.

    Each GPU is rented to a tenant of a reseller that can bill it, for a random session,
    then idles, then gets a new tenant. Some reports arrive minutes late, some twice, and
    a second collector reports some GPUs' seconds again: the ledger bills each GPU-second
    once and counts the rest as duplicates. Prints a progress line every few seconds on
    stderr and, when stopped, the run's counts (and the ledger's verdicts) as JSON.
    """
    settings = obj.settings
    settings.need_database(), settings.need_kafka()
    config = SimulationConfig(
        mean_session_seconds=mean_session, mean_idle_seconds=mean_idle, late_share=late,
        resend_share=resend, second_collector_share=second_collector,
    )
    lost = broker_lost(settings) if wait else None
    echo_json(run(_simulate(settings, config, gpus, rate, duration, seed, progress_seconds, wait, timeout, lost)))


async def _simulate(
    settings: Settings, config: SimulationConfig, gpus, rate, duration, seed, progress_seconds, wait, timeout, lost,
) -> dict:
    ingest_id = f"simulate-{uuid.uuid4().hex}"
    async with wiring.publisher(settings) as publisher, wiring.store(settings) as store:
        start = int(time.time())
        fleet, simulation = await simulate_service.prepare(
            store, start, gpus=gpus, rate=rate, seed=seed, config=config,
        )
        _announce(fleet, simulation, rate, ingest_id)
        stop = _Stop()

        async def progress(counts: Counts, elapsed: float) -> None:
            notice(_progress_line(counts, elapsed, simulation.held, await _ledger_counts(store, ingest_id)))

        with stop.on_signals():
            counts, end = await simulate_service.run(
                publisher, simulation, ingest_id, start=start, duration=duration, clock=time.time,
                sleep=stop.sleep, stopped=stop.is_set, on_progress=progress, progress_seconds=progress_seconds,
            )
        if wait:
            verdicts = await ingest_service.wait(
                store, ingest_id, counts.sent, timeout, lambda done, final: None, notice, lost,
            )
        else:
            verdicts = await _ledger_counts(store, ingest_id)
        notice(_progress_line(counts, end - start, 0, verdicts, final=True))
        return {
            "ingest_id": ingest_id, "seed": seed, "gpus": len(fleet.gpus),
            "synthesised_gpus": fleet.synthesised, "seconds": end - start, **counts.as_dict(),
            "ledger": verdicts,
        }


async def _ledger_counts(store, ingest_id: str) -> dict | None:
    """What the workers decided of this run so far (None: the database is away)."""
    try:
        return await ingest_service.tally(store, ingest_id)
    except ServiceUnavailable:
        return None


def _announce(fleet: Fleet, simulation: Simulation, rate: float | None, ingest_id: str) -> None:
    registered = len(fleet.gpus) - fleet.synthesised
    what = f"{registered} registered GPUs"
    if fleet.synthesised:
        what = f"{what} and {fleet.synthesised} synthesised ones" if registered else f"{fleet.synthesised} synthesised GPUs"
        notice(
            f"simulate: the registry has {fleet.registered_in_service} GPUs in service that a member can bill; "
            f"{fleet.synthesised} unregistered ones are made up (the catalog does not require registration)"
        )
    if fleet.unbillable:
        notice(f"simulate: {fleet.unbillable} registered GPUs in service are left out: no member can bill them now")
    windows = sorted(set(simulation.windows))
    each = "one report per GPU-second" if windows == [1] else f"reports of {'-'.join(map(str, windows))} GPU-seconds"
    notice(
        f"simulate: {what}; about {simulation.expected_rate:,.1f} events/s ({each}), "
        f"{simulation.second_collectors} GPUs with a second collector; ingest id {ingest_id}; Ctrl-C stops"
    )
    if rate is not None and simulation.expected_rate < rate * 0.9:
        notice(f"simulate: {len(fleet.gpus)} GPUs cannot send {rate:,.1f} events/s in real time; raise --gpus for more")


def _progress_line(counts: Counts, elapsed: float, held: int, verdicts: dict | None, final: bool = False) -> str:
    rate = counts.sent / elapsed if elapsed > 0 else 0.0
    line = (
        f"simulate: {'stopped after ' if final else ''}{elapsed:,.0f} s, {counts.sent:,} events sent "
        f"({rate:,.1f}/s), {counts.late:,} late, {counts.resent:,} re-sent, "
        f"{counts.second_collector:,} from the second collector"
    )
    if held:
        line += f", {held:,} held back"
    if verdicts is None:
        return line + "; ledger: cannot be read now"
    rejected = sum(verdicts["rejected"].values())
    return (
        f"{line}; ledger: {verdicts['accepted']:,} accepted, {verdicts['duplicate']:,} duplicate, "
        f"{rejected:,} rejected" + (f" {verdicts['rejected']}" if rejected else "")
    )


class _Stop:
    """Ctrl-C or SIGTERM ends the run cleanly (the held reports are sent); the next one
    gets the default handling (Ctrl-C interrupts, SIGTERM ends the process)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def is_set(self) -> bool:
        return self.event.is_set()

    async def sleep(self, seconds: float) -> None:
        """Sleep, or less if a signal comes."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout=seconds)
        except TimeoutError:
            pass

    @contextmanager
    def on_signals(self):
        loop = asyncio.get_running_loop()

        def restore() -> None:
            for number in self.SIGNALS:
                loop.remove_signal_handler(number)

        def stop() -> None:
            notice("simulate: stopping (sending the reports held back; Ctrl-C again to abandon them)")
            self.event.set()
            restore()

        for number in self.SIGNALS:
            loop.add_signal_handler(number, stop)
        try:
            yield
        finally:
            restore()


def register(cli: click.Group) -> None:
    cli.add_command(simulate)
