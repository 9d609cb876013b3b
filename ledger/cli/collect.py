"""`gpuledger collect`: the agent on a GPU node (ledger.collect), wired to Kafka here."""

from __future__ import annotations

import logging
import sys

import click

from ledger.cli.output import echo_json, notice
from ledger.cli.wiring import Context, pass_context, run
from ledger.collect import runner
from ledger.collect.attribution import StaticRentals
from ledger.collect.config import CollectConfig, load_config
from ledger.collect.fake_nvml import load_scenario
from schemas.wire import member_topic
from streams.auth import client_options
from streams.publish import KafkaPublisher


@click.command()
@click.option("--config", "config_file", required=True, type=click.Path(dir_okay=False), help="The agent's TOML configuration (docs/collector.md).")
@click.option("--fake-node", type=click.Path(dir_okay=False), help="Read GPUs from this scenario's fake NVML, on its clock, instead of the real NVML.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), help="Stop after this many seconds of the node's clock (default: until SIGTERM or Ctrl-C).")
@click.option("--dry-run", is_flag=True, help="Send nothing: print each event on stderr as it would be sent.")
@pass_context
def collect(obj: Context, config_file: str, fake_node: str | None, duration: float | None, dry_run: bool) -> None:
    """Report this node's allocated GPU-seconds to the member's own usage topic.

    Once a second it reads the GPUs through NVML and who holds each one (a static rentals
    file, or the kubelet's PodResources API), turns every GPU's minute into usage events,
    keeps them in its spool until the broker acknowledges them, and serves /metrics and
    /healthz. SIGTERM stops it cleanly; a restart sends what is still spooled. At the end
    it prints what it read and sent as JSON.
    """
    logging.getLogger("gpuledger.collect").setLevel(logging.INFO)
    config = load_config(config_file)
    source = _source(config)
    node_parts = runner.fake_node(load_scenario(fake_node)) if fake_node else runner.real_node
    if dry_run:
        def open_publisher():
            return runner.PrintingPublisher(_print_event)
    else:
        settings = obj.settings
        bootstrap, options = settings.need_kafka(), client_options(settings.kafka_auth)

        def open_publisher():
            return KafkaPublisher.lazy(bootstrap, settings.usage_topic, options)

        notice(f"collect: node {config.node} of {config.member}, sending to "
               f"{member_topic(settings.usage_topic, config.member)} at {bootstrap}; spool {config.spool}")
    def ready() -> None:
        notice(f"collect: sampling {config.node}'s GPUs every second; SIGTERM stops")

    echo_json(run(runner.run(config, source, node_parts, open_publisher, duration, on_ready=ready)))


def _print_event(raw: bytes) -> None:
    """A dry run's event, on stderr: stdout keeps the one summary document."""
    sys.stderr.buffer.write(b"collect: would send " + raw + b"\n")
    sys.stderr.flush()


def _source(config: CollectConfig):
    if config.source == "static":
        assert config.rentals is not None
        return StaticRentals(config.rentals)
    # Imported only for the kubernetes source: grpc and protobuf take a moment to load.
    from ledger.collect.kubernetes import PodResourcesSource

    return PodResourcesSource(config.kubernetes)


def register(cli: click.Group) -> None:
    cli.add_command(collect)
