"""The agent's configuration file (TOML), checked whole before the agent starts.

    member = "sakura"               # the provider: the member that owns this node's GPUs
    node = "node-042"               # in each event's source (default: $GPULEDGER_COLLECT_NODE,
                                    # which a DaemonSet sets to the node's name, else the host name)
    spool = "/var/lib/gpuledger-collect/spool.db"
    spool_max_events = 200000       # the bound (docs/collector.md, "Sizing")
    metrics_host = "0.0.0.0"
    metrics_port = 9400             # /metrics and /healthz (0: none)

    [skus]                          # NVML product name -> catalog SKU ("*": any other)
    "NVIDIA H100 80GB HBM3" = "H100"

    [attribution]
    source = "static"               # static | kubernetes
    rentals = "/etc/gpuledger/rentals.toml"   # for static

    [kubernetes]                    # for source = "kubernetes"
    socket = "/var/lib/kubelet/pod-resources/kubelet.sock"
    resources = ["nvidia.com/gpu"]
    reseller_label = "gpuledger.io/reseller"  # pod labels, when the API server is reachable
    tenant_label = "gpuledger.io/tenant"
    [kubernetes.namespaces.team-acme]         # else (or when a pod has no labels) by namespace
    reseller = "kddi"
    tenant = "acme"

Kafka comes from the usual settings (GPULEDGER_KAFKA_BOOTSTRAP, the member's SASL user
and password file, GPULEDGER_KAFKA_SSL_CAFILE): the agent writes the member's own topic.
"""

from __future__ import annotations

import os
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ledger.collect.attribution import Holder, checked_holder
from ledger.collect.spool import DEFAULT_MAX_EVENTS
from ledger.domain.errors import InputError
from ledger.domain.records import MEMBER_ID

DEFAULT_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
DEFAULT_METRICS_PORT = 9400
SOURCES = ("static", "kubernetes")
TOP_KEYS = {"member", "node", "spool", "spool_max_events", "metrics_host", "metrics_port", "skus", "attribution", "kubernetes"}


@dataclass(frozen=True)
class KubernetesConfig:
    socket: str = DEFAULT_SOCKET
    resources: tuple[str, ...] = ("nvidia.com/gpu",)
    reseller_label: str | None = None
    tenant_label: str | None = None
    namespaces: dict[str, Holder] = field(default_factory=dict)


@dataclass(frozen=True)
class CollectConfig:
    member: str
    node: str
    spool: Path
    spool_max_events: int = DEFAULT_MAX_EVENTS
    metrics_host: str = "0.0.0.0"
    metrics_port: int = DEFAULT_METRICS_PORT
    skus: dict[str, str] = field(default_factory=dict)
    source: str = "static"
    rentals: Path | None = None
    kubernetes: KubernetesConfig = KubernetesConfig()


def load_config(path: str | Path) -> CollectConfig:
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"collect configuration {path}: {exc}") from exc
    return config_of(document, str(path))


def _integer(document: dict, key: str, default: int, least: int, most: int, where: str) -> int:
    value = document.get(key, default)
    if type(value) is not int or not least <= value <= most:
        raise InputError(f"{where}: {key} must be an integer from {least} to {most}")
    return value


def config_of(document: dict, where: str = "collect configuration") -> CollectConfig:
    unknown = set(document) - TOP_KEYS
    if unknown:
        raise InputError(f"{where}: unknown keys {sorted(unknown)}")
    member = document.get("member")
    if not isinstance(member, str) or not MEMBER_ID.fullmatch(member):
        raise InputError(f"{where}: member {member!r} is not a member id")
    skus = document.get("skus", {})
    if not all(isinstance(v, str) and v for v in skus.values()):
        raise InputError(f"{where}: [skus] maps NVML names to SKU ids (strings)")
    attribution = document.get("attribution", {})
    source = attribution.get("source", "static")
    if source not in SOURCES:
        raise InputError(f"{where}: attribution.source must be one of {', '.join(SOURCES)}")
    rentals = attribution.get("rentals")
    if source == "static" and not rentals:
        raise InputError(f"{where}: attribution.rentals names the rentals file of the static source")
    return CollectConfig(
        member=member, node=str(document.get("node") or os.environ.get("GPULEDGER_COLLECT_NODE") or socket.gethostname()),
        spool=Path(document.get("spool", "/var/lib/gpuledger-collect/spool.db")),
        spool_max_events=_integer(document, "spool_max_events", DEFAULT_MAX_EVENTS, 1, 100_000_000, where),
        metrics_host=str(document.get("metrics_host", "0.0.0.0")),
        metrics_port=_integer(document, "metrics_port", DEFAULT_METRICS_PORT, 0, 65535, where),
        skus=dict(skus), source=source, rentals=Path(rentals) if rentals else None,
        kubernetes=_kubernetes(document.get("kubernetes", {}), where),
    )


def _kubernetes(section: dict, where: str) -> KubernetesConfig:
    namespaces = {
        name: checked_holder(entry.get("reseller"), entry.get("tenant"), entry.get("sku"), f"{where}, namespace {name}")
        for name, entry in section.get("namespaces", {}).items()
    }
    resources = tuple(section.get("resources", ("nvidia.com/gpu",)))
    return KubernetesConfig(
        socket=str(section.get("socket", DEFAULT_SOCKET)), resources=resources,
        reseller_label=section.get("reseller_label"), tenant_label=section.get("tenant_label"),
        namespaces=namespaces,
    )
