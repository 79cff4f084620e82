"""The Markdown report: every metric per system (median and min-max) with paired RazorFS/peer
ratios, the S3 requests each system sent per workload (by kind), then the issue's targets with the
measured figure and whether each was met."""

from __future__ import annotations

from .metrics import METRICS, REQUEST_GROUPS, request_metric
from .results import ResultSet
from .stats import Summary, ratio_summary, summarize
from .targets import OURS, TargetOutcome, evaluate_all

DASH = "\u2013"  # an en dash between min and max reads better than a minus sign


def fmt_number(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def fmt_summary(summary: Summary | None) -> str:
    if summary is None:
        return "—"
    if summary.n == 1 or summary.low == summary.high:
        return fmt_number(summary.median)
    return f"{fmt_number(summary.median)} ({fmt_number(summary.low)}{DASH}{fmt_number(summary.high)})"


def _failed(results: ResultSet, workload: str, system: str) -> bool:
    return any(e.workload == workload and e.system == system for e in results.errors)


def render_metrics_table(results: ResultSet) -> str:
    systems = results.systems
    peers = [s for s in systems if s != OURS] if OURS in systems else []
    header = ["metric", "unit", "better", *systems, *(f"{OURS}/{p}" for p in peers)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for metric in METRICS:
        if metric.key not in results.values:
            continue
        row = [metric.label.format(**results.labels), metric.unit, metric.better]
        for system in systems:
            summary = summarize(results.series(metric.key, system))
            cell = fmt_summary(summary)
            if summary is None and _failed(results, metric.workload, system):
                cell = "failed"
            row.append(cell)
        ours = results.series(metric.key, OURS)
        row.extend(fmt_summary(ratio_summary(ours, results.series(metric.key, p))) for p in peers)
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


# The requests table's columns: (header, the kinds summed into it).
REQUEST_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("GET", ("get",)),
    ("PUT", ("put",)),
    ("HEAD", ("head",)),
    ("LIST", ("list",)),
    ("other (POST, DELETE, ...)", ("post", "delete", "other")),
    ("total", ("total",)),
)


def _count_cell(results: ResultSet, group: str, system: str, kinds: tuple[str, ...]) -> str | None:
    summaries = [summarize(results.series(request_metric(group, kind), system)) for kind in kinds]
    present = [s for s in summaries if s is not None]
    if not present:
        return None
    total = sum(s.median for s in present)
    low, high = sum(s.low for s in present), sum(s.high for s in present)
    text = f"{total:,.0f}" if total == int(total) else fmt_number(total)
    return text if low == high else f"{text} ({low:,.0f}{DASH}{high:,.0f})"


def render_requests_table(results: ResultSet) -> str:
    """One row per request group and system: the requests that reached S3, by kind."""
    header = ["S3 requests of", "system", *(name for name, _ in REQUEST_COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for group in REQUEST_GROUPS:
        first = True  # the group's name once, on its first row
        for system in results.systems:
            cells = [_count_cell(results, group.key, system, kinds) for _, kinds in REQUEST_COLUMNS]
            if cells[-1] is None:
                continue
            label = group.label.format(**results.labels) if first else ""
            lines.append(f"| {label} | {system} | " + " | ".join(c or "—" for c in cells) + " |")
            first = False
    return "\n".join(lines) if len(lines) > 2 else ""


def _verdict(outcome: TargetOutcome) -> str:
    met = outcome.met
    return "not measured" if met is None else ("met" if met else "**missed**")


def render_targets_table(outcomes: list[TargetOutcome]) -> str:
    lines = ["| target | measured (median, min\u2013max) | verdict |", "|---|---|---|"]
    for outcome in outcomes:
        kind = "ratio" if outcome.target.is_ratio else "RazorFS"
        measured = fmt_summary(outcome.measured)
        lines.append(f"| {outcome.target.text} | {kind} {measured} | {_verdict(outcome)} |")
    return "\n".join(lines)


def render_report(results: ResultSet) -> str:
    machine = ", ".join(f"{k}: {v}" for k, v in results.machine.items())
    parts = [
        f"Sizes: **{results.sizes}**, {results.runs} alternating runs per system; "
        "cells are median (min\u2013max); ratios are RazorFS/peer of the same metric, paired run by run.",
        "",
        f"Machine: {machine}" if machine else "",
        "",
        render_metrics_table(results),
        "",
    ]
    requests = render_requests_table(results)
    if requests:
        parts += [
            "S3 requests per workload, counted at the proxy in one untimed counting run per system "
            "(after the timed runs; mount-time traffic excluded):",
            "",
            requests,
            "",
        ]
    parts += [
        render_targets_table(evaluate_all(results)),
    ]
    if results.errors:
        parts += ["", "Failed runs:", ""]
        parts += [f"- {e.workload} / {e.system} / run {e.run}: {e.error}" for e in results.errors]
    return "\n".join(parts) + "\n"
