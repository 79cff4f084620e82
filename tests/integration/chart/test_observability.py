"""The chart's dashboard and alerts: the ConfigMap carries the sidecar label and a dashboard whose
every panel has a query; `promtool check rules` accepts the PrometheusRule's rules and `promtool
test rules` shows "dirty data not draining" firing while uploads are stuck and clearing after;
every metric a query names is one the code exposes (docs/metrics.md)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from razorfs.csi.metrics import NODE_METRICS
from razorfs.mount.metrics import DAEMON_METRICS
from tests.integration.chart.helm import render

ON = {"metrics.grafanaDashboard.enabled": "true", "metrics.prometheusRule.enabled": "true"}
# Series names a query may use: the listed metrics plus a histogram's derived series.
KNOWN = {spec.name for spec in (*DAEMON_METRICS, *NODE_METRICS)} | {
    f"{spec.name}{suffix}" for spec in DAEMON_METRICS if spec.type == "histogram" for suffix in ("_bucket", "_count")
}


def _objects() -> list[dict[str, Any]]:
    return render(sets=ON, include_crds=False)


def _one(kind: str) -> dict[str, Any]:
    [obj] = [o for o in _objects() if o["kind"] == kind and "razorfs" in o["metadata"]["name"]]
    return obj


def dashboard_queries(objects: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Panel title -> its PromQL queries, from the rendered chart (for the e2e tier too)."""
    config_map = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-dashboard"))
    dashboard = json.loads(config_map["data"]["razorfs-volumes.json"])
    return {p["title"]: [t["expr"] for t in p["targets"]] for p in dashboard["panels"] if p["type"] != "row"}


def concrete_query(expr: str, volume: str = ".*", node: str = ".*", rate_interval: str = "1m") -> str:
    """A dashboard query as Grafana sends it, its variables filled in (for Prometheus' HTTP API)."""
    return expr.replace("$volume", volume).replace("$node", node).replace("$__rate_interval", rate_interval)


def alert_rules(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Alert name -> rule, from the rendered PrometheusRule (for the e2e tier too)."""
    [rule] = [o for o in objects if o["kind"] == "PrometheusRule"]
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}


def _metric_names(expr: str) -> set[str]:
    return {word for word in re.findall(r"\b(razorfs_[a-z0-9_]+)\b", expr)}


def test_observability_objects_are_off_by_default() -> None:
    kinds = {o["kind"] for o in render(include_crds=False)}
    assert "PrometheusRule" not in kinds
    assert not [o for o in render(include_crds=False) if o["metadata"]["name"].endswith("-dashboard")]


def test_the_dashboard_configmap_has_the_sidecar_label_and_queries_on_known_metrics() -> None:
    config_map = next(
        o for o in _objects() if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-dashboard")
    )
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["razorfs-volumes.json"])
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert any(p.get("repeat") == "volume" for p in dashboard["panels"]), rows  # one row per volume
    titles = " ".join(p["title"] for p in panels).lower()
    for topic in ("throughput", "latency", "cache", "dirty", "errors"):
        assert topic in titles
    for title, queries in dashboard_queries(_objects()).items():
        assert queries, title
        for query in queries:
            names = _metric_names(query)
            assert names and names <= KNOWN, (title, names - KNOWN)
            assert "$" not in concrete_query(query), query


def test_promtool_accepts_the_rules_and_they_name_known_metrics(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian's prometheus package) is not installed")
    rule = _one("PrometheusRule")
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump(rule["spec"]))
    result = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = alert_rules(_objects())
    assert {
        "RazorFSDirtyDataNotDraining", "RazorFSUploadErrors", "RazorFSDaemonRestarting",
        "RazorFSCacheFullBackPressure", "RazorFSS3Unreachable",
    } <= set(alerts)  # fmt: skip
    for name, alert in alerts.items():
        assert _metric_names(alert["expr"]) <= KNOWN, name


def test_dirty_not_draining_fires_while_uploads_are_stuck_and_clears_after(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian's prometheus package) is not installed")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_one("PrometheusRule")["spec"]))
    labels = '{volume="team-a/data", namespace="team-a", name="data", node="n1"}'
    # One scrape a minute: the oldest dirty file ages for 20 minutes (S3 cut off), then drains.
    ages = " ".join(str(60 * minute) for minute in range(21)) + " 0x10"
    alert_labels = {"volume": "team-a/data", "namespace": "team-a", "name": "data", "node": "n1", "severity": "warning"}
    annotations = {
        "summary": "Dirty data of volume team-a/data on n1 is not reaching S3",
        "description": "The oldest file written on the node and not yet in S3 is 18m 0s old. Check S3 reachability "
        "and the S3 errors panel; unstaging this volume waits until it drains.",
    }
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": f"razorfs_oldest_dirty_age_seconds{labels}", "values": ages}],
                "alert_rule_test": [
                    {"eval_time": "12m", "alertname": "RazorFSDirtyDataNotDraining", "exp_alerts": []},
                    {
                        "eval_time": "18m",
                        "alertname": "RazorFSDirtyDataNotDraining",
                        "exp_alerts": [{"exp_labels": alert_labels, "exp_annotations": annotations}],
                    },
                    {"eval_time": "25m", "alertname": "RazorFSDirtyDataNotDraining", "exp_alerts": []},
                ],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [promtool, "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
