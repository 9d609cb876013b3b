"""PromQL read by a real parser (promql-parser, the Rust crate Prometheus-compatible
databases use): an expression parses, and the metric names it selects."""

from __future__ import annotations

import re

import promql_parser
from prometheus_client.metrics import MetricWrapperBase

import ledger.http.metrics
import streams.metrics

# The series names each metric type exposes (the `_created` series are left out on
# purpose: nothing alerts or draws on them).
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
}
# What every target has without the code exporting it: Prometheus's own `up`, and
# prometheus_client's process collector.
STANDARD_SERIES = {"up", "process_start_time_seconds", "process_resident_memory_bytes", "process_cpu_seconds_total"}
_CHILDREN = ("lhs", "rhs", "expr", "args", "param", "vector_selector")
# Grafana's variables, as values a parser takes.
_GRAFANA = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def exported_series() -> set[str]:
    names = set()
    for module in (streams.metrics, ledger.http.metrics):
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                for family in value.describe():
                    names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def parse(expr: str):
    """The expression's syntax tree; ValueError with the parser's message if it is not PromQL."""
    return promql_parser.parse(re.sub(r"\$\w+", lambda m: _GRAFANA.get(m.group(), m.group()), expr))


def metric_names(expr: str) -> set[str]:
    """The metric names the expression selects."""
    names: set[str] = set()

    def walk(node) -> None:
        if type(node).__name__ == "VectorSelector" and node.name:
            names.add(node.name)
        for attribute in _CHILDREN:
            child = getattr(node, attribute, None)
            for item in child if isinstance(child, list | tuple) else [child]:
                if item is not None and not isinstance(item, str | int | float):
                    walk(item)

    walk(parse(expr))
    return names
