"""`python -m tests.bench`: run the suite, then write results.json, table.md and PNG plots under
bench-results/<stamp>/ (and, with --publish, the table and plots into docs/benchmarks/)."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from .metrics import WORKLOADS
from .mounters import MOUNTERS
from .plots import plot_workloads
from .profiler import top_frames, top_inclusive
from .results import ResultSet
from .runner import SuiteOptions, run_suite
from .sizes import PRESETS, QUICK
from .table import render_report

REPO = Path(__file__).resolve().parents[2]
RESULTS_ROOT = REPO / "bench-results"
PUBLISHED = REPO / "docs" / "benchmarks"
README_START = "<!-- bench-results:start -->"
README_END = "<!-- bench-results:end -->"
SYSTEMS = ["razorfs", "rclone", "s3fs", "boto3", "local"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (a few minutes), same code paths")
    parser.add_argument(
        "--sizes", choices=sorted(PRESETS), default="full", help="size preset (default full, ~20 min)"
    )
    parser.add_argument("--runs", type=int, help="alternating runs per system (default: 3 full, 2 quick)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma list of {SYSTEMS}")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma list of {list(WORKLOADS)}")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="all",
        choices=["all", "gil"],
        help="py-spy the RazorFS daemon in every session (gil: only the thread holding the GIL)",
    )
    parser.add_argument("--publish", action="store_true", help="copy table and plots into docs/benchmarks/")
    parser.add_argument("--keep-workdir", action="store_true", help="keep the temporary work directory")
    parser.add_argument("--from-json", type=Path, help="only re-render a results.json (no measuring)")
    return parser.parse_args(argv)


def write_outputs(results: ResultSet, out_dir: Path) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    results.save(out_dir / "results.json")
    report = render_report(results)
    (out_dir / "table.md").write_text(report)
    plot_workloads(results, out_dir / "plots")
    profiles = sorted((out_dir / "profiles").glob("*.txt"))
    if profiles:
        (out_dir / "profiles" / "summary.md").write_text(summarize_profiles(profiles))
    return report


def summarize_profiles(profiles: list[Path]) -> str:
    lines: list[str] = []
    for path in profiles:
        lines += [f"## {path.stem}", "", "self time:"]
        lines += [f"- {share:6.1%} {frame}" for frame, share in top_frames(path)]
        lines += ["", "inclusive:"]
        lines += [f"- {share:6.1%} {frame}" for frame, share in top_inclusive(path)]
        lines.append("")
    return "\n".join(lines)


def publish(out_dir: Path) -> None:
    """Copies table, JSON and plots into docs/benchmarks/ and rewrites the block between the
    bench-results markers of docs/benchmarks/README.md (and nothing else of that page)."""
    PUBLISHED.mkdir(parents=True, exist_ok=True)
    shutil.copy(out_dir / "table.md", PUBLISHED / "latest.md")
    shutil.copy(out_dir / "results.json", PUBLISHED / "latest.json")
    order = {name: i for i, name in enumerate(WORKLOADS)}
    plots = sorted((out_dir / "plots").glob("*.png"), key=lambda png: order.get(png.stem, len(order)))
    for png in plots:
        shutil.copy(png, PUBLISHED / png.name)
    block = (out_dir / "table.md").read_text() + "\n" + "\n".join(
        f"![{png.stem}]({png.name})" for png in plots
    )
    readme = PUBLISHED / "README.md"
    text = readme.read_text()
    if README_START in text and README_END in text:
        head, rest = text.split(README_START, 1)
        _, tail = rest.split(README_END, 1)
        readme.write_text(f"{head}{README_START}\n{block}\n{README_END}{tail}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        results = ResultSet.from_json(args.from_json.read_text())
        out_dir = args.from_json.parent
    else:
        sizes = QUICK if args.quick else PRESETS[args.sizes]
        if args.runs:
            from dataclasses import replace

            sizes = replace(sizes, runs=args.runs)
        systems = [s for s in args.systems.split(",") if s]
        unknown = [s for s in systems if s not in SYSTEMS]
        workloads = [w for w in args.workloads.split(",") if w]
        unknown += [w for w in workloads if w not in WORKLOADS]
        if unknown:
            print(f"bench: unknown systems or workloads: {unknown}", file=sys.stderr)
            return 2
        assert set(MOUNTERS) | {"boto3"} == set(SYSTEMS)
        out_dir = RESULTS_ROOT / f"{time.strftime('%Y%m%d-%H%M%S')}-{sizes.name}"
        options = SuiteOptions(sizes, systems, workloads, out_dir, args.profile, args.keep_workdir)
        try:
            results = run_suite(options)
        except KeyboardInterrupt:
            print("bench: interrupted; everything started was torn down", file=sys.stderr)
            return 130
        latest = RESULTS_ROOT / "latest"
        latest.unlink(missing_ok=True)
        latest.symlink_to(out_dir.name)
    report = write_outputs(results, out_dir)
    print(report)
    print(f"results in {out_dir}")
    if args.publish:
        publish(out_dir)
        print(f"published table and plots to {PUBLISHED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
