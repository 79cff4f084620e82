"""PNG bar charts, one per workload: a panel per metric, a bar per system at its median with the
min-max range as the error bar."""

from __future__ import annotations

from pathlib import Path

from .metrics import WORKLOADS, metrics_of
from .results import ResultSet
from .stats import summarize

LOG_SCALE_SPREAD = 30.0
COLORS = {"razorfs": "#d62728", "rclone": "#1f77b4", "s3fs": "#2ca02c", "boto3": "#9467bd", "local": "#7f7f7f"}


def plot_workloads(results: ResultSet, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # no display on the bench machine
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for workload in WORKLOADS:
        metrics = [m for m in metrics_of(workload) if m.key in results.values]
        if not metrics:
            continue
        fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.8), squeeze=False)
        for ax, metric in zip(axes[0], metrics, strict=True):
            names, medians, below, above = [], [], [], []
            for system in results.systems:
                summary = summarize(results.series(metric.key, system))
                if summary is None:
                    continue
                names.append(system)
                medians.append(summary.median)
                below.append(summary.median - summary.low)
                above.append(summary.high - summary.median)
            ax.bar(names, medians, yerr=[below, above], capsize=4, color=[COLORS.get(n, "#333") for n in names])
            for i, value in enumerate(medians):
                ax.annotate(f"{value:.3g}", (i, value), ha="center", va="bottom", fontsize=8,
                            xytext=(0, 2), textcoords="offset points")  # fmt: skip
            positive = [v for v in medians if v > 0]
            if positive and max(positive) / min(positive) > LOG_SCALE_SPREAD:
                ax.set_yscale("log")  # the local disk and RazorFS can differ 100x: keep both readable
            title = metric.label.format(**results.labels)
            ax.set_title(title if len(title) < 48 else title[:46] + "…", fontsize=9)
            ax.set_ylabel(f"{metric.unit} ({metric.better} is better)", fontsize=8)
            ax.tick_params(labelsize=8)
        fig.suptitle(f"{workload} — {results.sizes} sizes, {results.runs} runs, median and min\u2013max", fontsize=10)
        fig.tight_layout()
        path = out_dir / f"{workload}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written
