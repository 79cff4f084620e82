"""Prometheus metrics of the operator: reconciliations by handler and outcome (the problem's
reason when one was reported), served on --metrics-port."""

from __future__ import annotations

from prometheus_client import Counter, start_http_server

RECONCILES = Counter(
    "razorfs_operator_reconciles",
    "RazorVolume reconciliations by handler and outcome (ok, or the problem's reason)",
    ["handler", "outcome"],
)


def count_reconcile(handler: str, outcome: str) -> None:
    RECONCILES.labels(handler=handler, outcome=outcome).inc()


def serve_metrics(port: int) -> None:
    start_http_server(port)
