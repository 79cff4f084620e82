"""Unit tests of the suite's pure parts: summaries, paired ratios, targets, the table, JSON.

The benchmark itself never runs under pytest; these need no server, mount or process."""

from __future__ import annotations

import math
from pathlib import Path

from tests.bench.metrics import request_figures, request_metric
from tests.bench.profiler import top_frames
from tests.bench.results import ResultSet
from tests.bench.stats import paired_ratios, ratio_summary, summarize
from tests.bench.table import fmt_number, render_report
from tests.bench.targets import TARGETS, cost_ratios, evaluate
from tests.bench.workloads.random_read import read_offsets


def _results() -> ResultSet:
    results = ResultSet("quick", 3, ["razorfs", "rclone", "s3fs"], {"seq": "1 GiB", "files": "5,000"})
    for run, (ours, theirs) in enumerate([(300.0, 100.0), (330.0, 300.0), (320.0, 160.0)]):
        results.record("seq_read_cold_mibps", "razorfs", run, ours)
        results.record("seq_read_cold_mibps", "rclone", run, theirs)
    return results


def test_summary_ignores_failed_runs_marked_nan() -> None:
    summary = summarize([3.0, math.nan, 1.0, 2.0])
    assert summary is not None
    assert (summary.median, summary.low, summary.high, summary.n) == (2.0, 1.0, 3.0, 3)
    assert summarize([math.nan]) is None


def test_ratios_pair_runs_taken_back_to_back() -> None:
    assert paired_ratios([2.0, 6.0, math.nan], [1.0, 3.0, 5.0]) == [2.0, 2.0]
    summary = ratio_summary([300.0, 330.0, 320.0], [100.0, 300.0, 160.0])
    assert summary is not None and summary.median == 2.0 and summary.low == 1.1


def test_ratio_target_uses_the_median_paired_ratio() -> None:
    target = next(t for t in TARGETS if t.metric == "seq_read_cold_mibps" and t.peer == "rclone")
    outcome = evaluate(_results(), target)
    assert outcome.measured is not None and outcome.measured.median == 2.0
    assert outcome.met is True


def test_unmeasured_target_is_neither_met_nor_missed() -> None:
    target = next(t for t in TARGETS if t.peer is None)
    assert evaluate(_results(), target).met is None


def test_report_shows_medians_ranges_ratios_and_failures() -> None:
    results = _results()
    results.fail("seq_read", "s3fs", 0, "ProcessDied: s3fs exited with 1")
    report = render_report(results)
    row = "| cold sequential read of 1 GiB | MiB/s | higher | 320 (300\u2013330) | 160 (100\u2013300) | failed |"
    assert row in report
    assert "2.00 (1.10\u20133.00)" in report
    assert "- seq_read / s3fs / run 0: ProcessDied" in report


def test_results_survive_a_json_round_trip() -> None:
    results = _results()
    results.record("ls_cold_s", "s3fs", 1, 4.5)
    again = ResultSet.from_json(results.to_json())
    assert again.series("seq_read_cold_mibps", "rclone") == [100.0, 300.0, 160.0]
    assert math.isnan(again.series("ls_cold_s", "s3fs")[0]) and again.series("ls_cold_s", "s3fs")[1] == 4.5


def test_numbers_keep_three_significant_figures() -> None:
    assert [fmt_number(v) for v in (1234.5, 12.34, 1.234, 0.01234)] == ["1,234", "12.3", "1.23", "0.0123"]


def test_random_offsets_are_block_aligned_and_the_same_for_every_system() -> None:
    offsets = read_offsets(1 << 20, 50, run=1)
    assert offsets == read_offsets(1 << 20, 50, run=1) != read_offsets(1 << 20, 50, run=2)
    assert all(o % 4096 == 0 and 0 <= o <= (1 << 20) - 4096 for o in offsets)


def test_top_frames_counts_self_time_from_collapsed_stacks(tmp_path: Path) -> None:
    collapsed = tmp_path / "p.txt"
    collapsed.write_text("main;read;pread 30\nmain;write;sendall 60\nmain;read;pread 10\n")
    assert top_frames(collapsed)[0] == ("sendall", 0.6)
    assert top_frames(collapsed)[1] == ("pread", 0.4)


def test_cost_target_compares_with_the_cheapest_peer_run_by_run() -> None:
    results = ResultSet("quick", 2, ["razorfs", "rclone", "s3fs", "boto3"], {"files": "500"})
    for system, totals in {"razorfs": [510.0, 520.0], "rclone": [600.0, 500.0], "s3fs": [1000.0, 1040.0]}.items():
        for run, total in enumerate(totals):
            results.record(request_metric("small_files", "total"), system, run, total)
    results.record(request_metric("small_files", "total"), "boto3", 0, 500.0)  # the floor, not a peer
    target = next(t for t in TARGETS if t.metric == request_metric("small_files", "total"))
    outcome = evaluate(results, target)
    assert outcome.measured is not None and outcome.measured.low == 0.85 and outcome.measured.high == 1.04
    assert math.isclose(outcome.measured.median, 0.945) and outcome.met is True  # boto3's 500 is not a peer
    assert cost_ratios([0.0, 2.0, math.nan], [[0.0, 0.0, 1.0]]) == [1.0, math.inf]


def test_requests_table_shows_each_kind_per_system() -> None:
    results = ResultSet("quick", 2, ["razorfs", "rclone", "local"], {"objects": "2,000"})
    by_kind = {"razorfs": {"LIST": 2, "HEAD": 3}, "rclone": {"LIST": 1, "POST": 1, "DELETE": 2}}
    for system, counts in by_kind.items():
        for metric, value in request_figures("ls_cold", counts).items():
            results.record(metric, system, 0, value)
    report = render_report(results)
    assert "| `ls -l` of 2,000 objects, cold | razorfs | 0 | 0 | 3 | 2 | 0 | 5 |" in report
    assert "|  | rclone | 0 | 0 | 0 | 1 | 3 | 4 |" in report
    assert "| local | 0" not in report
    assert "S3 requests, `ls -l` cold: at most the cheapest peer's (rclone, s3fs) | ratio 1.25 | **missed** |" in report
