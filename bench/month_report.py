"""The table `python -m bench.month` prints: one row per monthly step, then memory and storage.

Formats the results document `bench.month` builds (bench-results/month.json); computes
nothing but units.
"""

from __future__ import annotations

import json

ROW = "  {:<44} {:>9} {:>14} {:>10} {:>10} {:>7}  {}"


def size(value: int | None) -> str:
    if value is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if value >= scale:
            return f"{value / scale:,.{1 if value < 100 * scale else 0}f} {unit}"
    return f"{value} B"


def _row(label: str, step: dict | None, written: int | None, note: str = "") -> str:
    if step is None:
        return ROW.format(label, "skipped", "", "", "", "", "")
    others = step.get("other_cpu_cores")
    return ROW.format(label, f"{step['seconds']:,.1f}", size(written), f"{step['vm_hwm_mib']:,.0f}",
                      f"{step['peak_tree_rss_mib']:,.0f}", "-" if others is None else f"{others:.2f}", note)


def _header(results: dict) -> list[str]:
    c, env = results["config"], results["environment"]
    return [
        f"gpuledger: a month of the whole alliance ({c['period']}, {c['days']} days), measured",
        f"  {results['command']}   ({results['started_at']})",
        f"  {c['gpus']:,} GPUs ({c['registered_gpus']:,} registered), {c['tenants']:,} tenants, {c['members']} members, "
        f"{c['skus']} SKUs, {c['grants']} grants; {c['workers']} worker(s)",
        f"  {c['events']:,} hourly events, {c['gpu_seconds']:,} GPU-seconds ({c['utilisation']:.0%} of the GPUs' time); "
        f"late file {c['late_file_events']:,} lines (of which {c['resent']:,} re-sent, {c['rereported']:,} re-reported "
        f"by a second collector); NDJSON {size(c['ndjson_bytes'])}, generated in {c['generate_seconds']} s",
        f"  machine: {env['cpus']} CPUs shared with others: load average {env['load_average_before']} before, "
        f"{env['load_average_after']} after; other processes used {env['whole_run']['other_cpu_cores']} cores "
        f"on average during the {env['steps_seconds']:,.0f} s of steps",
        f"  {env['broker']}; {env['postgres']}",
        "",
        ROW.format("step", "seconds", "wrote", "HWM MiB", "tree MiB", "others", "notes"),
    ]


def _steps(steps: dict) -> list[str]:
    ingest = steps["ingest"]
    late = ingest["late"]
    lines = [
        _row("ingest month.ndjson --wait", ingest, None, f"{ingest['events']:,} events, "
             f"{ingest['events_per_second']:,}/s; {json.dumps(ingest['counts'])}"),
        _row("ingest late.ndjson --wait", late, None, json.dumps(late["counts"])),
    ]
    raw = ingest.get("raw_consumer")
    if raw:
        lines.append(ROW.format(
            "raw consumer read of the same records", f"{raw['seconds']:,.1f}", "", "", "", "",
            f"{raw['records']:,} records ({raw['records_per_second']:,}/s), {raw['events']:,} events "
            f"({raw['events_per_second']:,}/s); ingest/raw {ingest['events_per_second'] / raw['events_per_second']:.2f}"
            if raw["events_per_second"] else f"{raw['records']:,} records"))
    api = steps.get("api")
    if api:
        one = api["single_client"]
        lines.append(ROW.format(
            "GET /v1/usage over the month, 1 client", "", "", "", "", "",
            f"p50 {one['p50_ms']} ms, p99 {one['p99_ms']} ms, {one['count']} answers, {one['errors']} errors; "
            f"{one['response_items']:,} items, {size(one['response_bytes'])} per answer ({api['member']}'s, day x tenant)"))
        for kind in ("cached", "uncached"):
            load = api[kind]
            lines.append(ROW.format(
                f"GET /v1/usage over the month, {kind}", f"{load['seconds']:.1f}", "", "", "", "",
                f"{load['concurrency']} clients: p50 {load['latency']['p50_ms']} ms, p99 {load['latency']['p99_ms']} ms, "
                f"{load['requests_per_second']:,} req/s, {load['errors']} errors"))
    else:
        lines.append(_row("GET /v1/usage over the month", None, None))
    close = steps.get("close")
    lines += [
        _row("settle (open statement)", steps.get("open"), (steps.get("open") or {}).get("output_bytes")),
        _row("settle --close", close, (close or {}).get("output_bytes"), f"{close['lines']:,} lines" if close else ""),
        _row("report capacity", steps.get("capacity"), (steps.get("capacity") or {}).get("output_bytes")),
    ]
    export = steps.get("export")
    files = (export or {}).get("bundle_files") or {}
    largest = max(files, key=files.get) if files else None
    lines += [
        _row("export (auditor bundle)", export if export and "seconds" in export else None,
             (export or {}).get("bundle_bytes"), f"{largest} {size(files[largest])}" if largest else ""),
        _row("verify BUNDLE (independent auditor)", steps.get("verify"), None),
        _row("verify --db", steps.get("verify_db"), None),
    ]
    documents = steps.get("documents")
    lines.append(_row("documents (every member)", documents, (documents or {}).get("bytes"),
                      f"{documents['files']:,} files, {documents['pdfs']:,} PDFs" if documents else ""))
    return lines


def _memory(results: dict) -> list[str]:
    lines = ["", "  stack components, peak VmRSS with their child processes (MiB), overall and by step:"]
    for name, figures in results["stack_memory"].items():
        by_step = ", ".join(f"{step} {mib:,.0f}" for step, mib in figures["by_step_mib"].items() if step != "start")
        lines.append(f"    {name:<12} {figures['peak_mib']:>8,.0f}   ({by_step})")
    storage = results["storage"]
    lines += [
        "",
        f"  database {size(storage['database_bytes'])} (pg_database_size); PostgreSQL data folder "
        f"{size(storage['postgres_data_folder_bytes'])} (WAL included); the stack's home {size(storage['stack_home_bytes'])}",
        "  largest tables (with indexes; heap; rows):",
    ]
    for table in storage["largest_tables"]:
        lines.append(f"    {table['relname']:<28} {size(table['bytes']):>10}  {size(table['heap_bytes']):>10}  "
                     f"{table['rows']:>12,}")
    return lines


def format_table(results: dict) -> str:
    lines = _header(results) + _steps(results["steps"]) + _memory(results)
    lines += [
        "",
        "  HWM: the command's own peak resident memory (VmHWM); tree: peak VmRSS of the command and the processes",
        "  it started, sampled every 0.1 s (0.5 s after 10 s); others: cores the rest of the machine used during the step",
        f"\n  written to {results['results_file']}",
    ]
    return "\n".join(lines)
