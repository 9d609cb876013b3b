"""The table `python -m bench.pipeline` prints: its figures, as read by a person.

Owns `format_table` and its sections (phases, timelines, ratios, CPU by component,
memory, the reference figures, py-spy summaries). It formats the results document that
`bench.pipeline` builds and writes to bench-results/pipeline.json; it computes nothing.
"""

from __future__ import annotations

import json

from bench.pyspy import ROOT_FRAME

PHASE_COLUMN = 58


def _all_in_ledger(timeline: dict) -> str:
    if timeline["all_events_in_ledger"] is not None:
        return str(timeline["all_events_in_ledger"])
    if timeline["last_poll"]:
        seconds, seen = timeline["last_poll"]
        return f"after {seconds} (the bench's last poll saw {seen:,})"
    return "not seen by the bench"


def _row(label: str, count: int, seconds: float, per_second: int) -> str:
    return f"  {label:<{PHASE_COLUMN}} {count:>9,} {seconds:>8.2f} {per_second:>11,}"


def _header(results: dict) -> list[str]:
    config, environment = results["config"], results["environment"]
    return [
        "gpuledger pipeline benchmark",
        f"  {results['started_at']}  {config['events']:,} events per phase, {config['gpus']:,} GPUs, "
        f"{config['workers']} worker(s), {config['partitions']} partitions",
        f"  broker: {environment['broker']}",
        f"  postgres: {environment['postgres']}",
        f"  machine: {environment['cpus']} CPUs, shared (the rest of the machine used "
        f"{environment['other_cpu_cores_during_phases']} cores on average during the phases): "
        "figures are noisy; ratios come from one run",
        "",
    ]


def _phase_rows(phases: dict) -> list[str]:
    a, b, c, d = phases["a_ingest"], phases["b_single_records"], phases["c_raw_consumer"], phases["d_faust_ceiling"]
    lines = [
        f"  {'phase':<{PHASE_COLUMN}} {'events':>9} {'seconds':>8} {'per second':>11}",
        _row("a. gpuledger ingest FILE --wait (batch records)", a["events"], a["seconds"], a["events_per_second"]),
        _row("b. single-event records, first send -> tallies reach N", b["events"], b["seconds"],
             b["events_per_second"]),
        _row("     (of which producing them)", b["records"], b["produce_seconds"], b["produce_records_per_second"]),
        _row("c. raw aiokafka consumer, records of phase b", c["records"], c["seconds"],
             c["records_per_second"] or 0),
        _row("d. stock Faust agents counting the same records (no work)", d["records"], d["seconds"],
             d["records_per_second"]),
    ]
    e = phases.get("e_backlog")
    if e:
        lines.append(
            _row("e. backlog (batch records) drained by resumed workers", e["events"], e["seconds"],
                 e["events_per_second"])
        )
    return lines


def _timelines_and_ratios(results: dict) -> list[str]:
    a, b = results["phases"]["a_ingest"], results["phases"]["b_single_records"]
    r = results["ratios"]
    return [
        "",
        f"  a timeline (s from start): first events in the ledger {a['timeline_seconds']['first_events_in_ledger']}, "
        f"all {_all_in_ledger(a['timeline_seconds'])}, command exited {a['seconds']:.2f}; "
        f"an empty ingest --wait takes {a['empty_ingest_command_seconds']:.2f}",
        f"  b timeline (s from first send): produced {b['timeline_seconds']['all_produced']}, "
        f"first events in the ledger {b['timeline_seconds']['first_events_in_ledger']}, all {b['seconds']:.2f}",
        f"  counts a: {json.dumps(a['counts'])}",
        f"  counts b: {json.dumps(b['counts'])}",
        "",
        "  ratios (events/s over records/s):",
        f"    a/c = {r['a_over_c']}   b/c = {r['b_over_c']}   a/b = {r['a_over_b']}   b/d = {r['b_over_d']}",
        "",
    ]


def _phase_cpu(name: str, phase: dict) -> list[str]:
    cpu = phase.get("cpu")
    if not cpu:
        return []
    used = ", ".join(f"{k} {v}" for k, v in cpu["cpu_seconds"].items() if v >= 0.05)
    lines = [
        f"    {name}: wall {cpu['wall_seconds']} s; {used}; machine busy {cpu['machine_busy_cores']} cores, "
        f"others {cpu['other_cpu_cores']}"
    ]
    per_event = phase.get("worker_cpu_microseconds_per_event")
    if per_event is not None:
        lines.append(f"      worker CPU per event: {per_event} us")
    rebalances = {worker: n for worker, n in (phase.get("rebalances") or {}).items() if n}
    if rebalances:
        lines.append(
            "      partition assignments during the phase (rebalances; they pause consumption): "
            + ", ".join(f"{worker} {n}" for worker, n in rebalances.items())
        )
    per_record = phase.get("cpu_microseconds_per_record")
    if per_record is not None:
        lines.append(f"      Faust agents' CPU per record: {per_record} us ({phase['processes']} process(es))")
    rows = phase.get("intake_tally_rows")
    if rows and "rows" in rows:
        lines.append(
            f"      intake_tallies rows (one per batch and partition): {rows['rows']:,}, "
            f"events per row mean {rows['mean_events_per_row']:,}, max {rows['max_events_per_row']:,}"
        )
    return lines


def _cpu(phases: dict) -> list[str]:
    lines = ["  CPU seconds by component, per phase:"]
    for name, phase in phases.items():
        lines += _phase_cpu(name, phase)
    return lines


def _memory(memory: dict) -> list[str]:
    lines = ["", "  memory (MiB):"]
    for name, figures in memory["workers"].items():
        by_phase = ", ".join(
            f"{phase.split('_')[0]} {peak}" for phase, peak in figures["peak_rss_sampled_by_phase_mib"].items()
            if peak is not None and phase != "start"
        )
        lines.append(
            f"    {name}: peak sampled VmRSS {figures['peak_rss_sampled_mib']} (by phase: {by_phase}), "
            f"VmHWM {figures['vmhwm_mib']}, VmRSS at end {figures['rss_end_mib']}"
        )
    broker = memory["broker"]
    lines.append(
        f"    broker (Tansu, memory storage, never frees): peak sampled VmRSS {broker['peak_rss_sampled_mib']}, "
        f"at end {broker['rss_end_mib']}"
    )
    return lines


def _reference(results: dict) -> list[str]:
    phases, config, reference = results["phases"], results["config"], results["reference"]
    a, b, d = phases["a_ingest"], phases["b_single_records"], phases["d_faust_ceiling"]
    one, two = reference["infra_faust_ceiling_one_process"], reference["infra_faust_ceiling_two_processes"]
    return [
        "",
        "  reference (not a pass/fail):",
        f"    issue target, a: >= {reference['target_ingest_events_per_second']:,} events/s end to end "
        f"-> measured {a['events_per_second']:,}",
        f"    single-event records, b: no less than Faust's own ceiling -> measured {b['events_per_second']:,} "
        f"with {config['workers']} worker(s); Faust's ceiling in this run (d, {d['processes']} process(es)): "
        f"{d['records_per_second']:,}; in INFRA.md: "
        f"{one[0]:,}-{one[1]:,} (1 process), {two[0]:,}-{two[1]:,} (2 processes)",
    ]


def _profiles(phases: dict) -> list[str]:
    lines = []
    for name, phase in phases.items():
        for worker, summary in (phase.get("profile") or {}).items():
            if "self_percent_by_package" not in summary:
                continue
            lines += ["", f"  py-spy, {name}, {worker} ({summary['samples']} samples, busy {summary['busy_fraction']}):"]
            lines.append("    self time by package: " + ", ".join(f"{n} {p}%" for n, p in summary["self_percent_by_package"][:8]))
            lines.append(f"    inclusive, below {ROOT_FRAME} (main thread) and in other threads:")
            lines += [f"      {p:5.1f}%  {n}" for n, p in summary["inclusive_percent"][:12]]
            lines.append(f"    self ({ROOT_FRAME}'s own is the native uvloop event loop):")
            lines += [f"      {p:5.1f}%  {n}" for n, p in summary["self_percent"][:8]]
    return lines


def format_table(results: dict) -> str:
    lines = _header(results) + _phase_rows(results["phases"]) + _timelines_and_ratios(results)
    lines += _cpu(results["phases"]) + _memory(results["memory"]) + _reference(results)
    lines += _profiles(results["phases"])
    lines.append(f"\n  written to {results['results_file']}")
    return "\n".join(lines)
