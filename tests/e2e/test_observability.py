"""The chart's dashboard against a real Prometheus (Debian's) scraping the real node: while a workload
writes, reads, misses a name and has its mount daemon killed (the plugin restarts it), every
dashboard panel's query returns at least one series for the workload's volume, and every alert
rule's expression is accepted by Prometheus' rule evaluation."""

from __future__ import annotations

import json
import shutil
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.chart.helm import render
from tests.integration.chart.test_observability import ON, alert_rules, concrete_query, dashboard_queries
from tests.realparts import dev_cluster
from tests.realparts.kubeapply import Applier
from tests.realparts.processes import ManagedProcess, RealPartMissing, free_port, wait_until

from .workloads import exec_in, pod, razorvolume, running, wait_for

pytestmark = [pytest.mark.kube, pytest.mark.fuse, pytest.mark.s3, pytest.mark.timeout(600)]
SCRAPE_INTERVAL_S = 2
# Which chart pods Prometheus scrapes, by component label, at their metrics port annotation.
SCRAPED = ("node", "operator", "controller")


def scrape_targets(core: Any) -> list[str]:
    targets = []
    for component in SCRAPED:
        selector = f"app.kubernetes.io/component={component}"
        for found in core.list_namespaced_pod(dev_cluster.SYSTEM_NAMESPACE, label_selector=selector).items:
            port = found.metadata.annotations["prometheus.io/port"]
            targets.append(f"{found.status.pod_ip}:{port}")
    return targets


@pytest.fixture
def prometheus(dev: dev_cluster.DevState, api: Any, tmp_path: Path) -> Iterator[str]:
    """Prometheus on loopback, scraping the chart's pods every 2 s, with the chart's alert rules."""
    from kubernetes import client

    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(str(RealPartMissing("prometheus not found: install Debian's prometheus (`make setup` does)")))
    rules = tmp_path / "rules.yaml"
    [rule_object] = [o for o in render(sets=ON, include_crds=False) if o["kind"] == "PrometheusRule"]
    rules.write_text(yaml.safe_dump({"groups": rule_object["spec"]["groups"]}))
    config = tmp_path / "prometheus.yaml"
    targets = scrape_targets(client.CoreV1Api(api))
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "evaluation_interval": f"{SCRAPE_INTERVAL_S}s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "razorfs", "static_configs": [{"targets": targets}]}],
    }))
    port = free_port()
    process = ManagedProcess("prometheus", [
        binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle",
    ], tmp_path / "prometheus.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: process.check_alive() and bool(query(url, "up")), 60, "prometheus", 0.5)
        yield url
    finally:
        process.stop()


def query(url: str, expr: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}", timeout=10) as r:
        answer = json.load(r)
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def kill_mount_daemons(dev: dev_cluster.DevState, core: Any) -> None:
    """SIGKILL to every mount daemon in the node plugin's container (the plugin restarts them)."""
    [node_pod] = core.list_namespaced_pod(
        dev_cluster.SYSTEM_NAMESPACE, label_selector="app.kubernetes.io/component=node").items
    # The bracket keeps this script (and grep) from matching its own command line.
    script = ("for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q 'razorfs[.]mount mount' "
              "&& kill -9 ${p#/proc/}; done; true")
    dev.node.kubectl("exec", "-n", dev_cluster.SYSTEM_NAMESPACE, node_pod.metadata.name, "-c", "node", "--",
                     "sh", "-c", script)


def test_every_dashboard_panel_shows_the_volume_and_every_alert_rule_evaluates(
    dev: dev_cluster.DevState, api: Any, namespace: str, prometheus: str
) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    applier = Applier(api, field_manager="razorfs-e2e")
    applier.apply(razorvolume("watched", namespace, dev, f"watched-{uuid.uuid4().hex[:8]}"))
    wait_for("claim bound", lambda: core.read_namespaced_persistent_volume_claim("watched", namespace)
             .status.phase == "Bound")
    workload = ("i=0; while true; do i=$((i+1)); head -c 65536 /dev/urandom > /data/f$i; cat /data/f$i > /dev/null; "
                "cat /data/missing-$i 2>/dev/null; sleep 0.5; done")
    applier.apply(pod("busy", namespace, dev.image, workload, "watched", host_to_container=True))
    running(core, namespace, "busy")
    time.sleep(10 * SCRAPE_INTERVAL_S)
    kill_mount_daemons(dev, core)
    # The operator names the RazorVolume in the PV, so the series carry it as their volume label.
    volume = f"{namespace}/watched"
    # Counters appear with their first event; a few scrapes after the restart every panel has data.
    panels = dashboard_queries(render(sets=ON, include_crds=False))

    def empty_panels() -> list[str]:
        return [title for title, exprs in panels.items()
                if not any(query(prometheus, concrete_query(e, volume=volume, rate_interval="30s")) for e in exprs)]

    missing: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        missing = empty_panels()
        if not missing:
            break
        time.sleep(SCRAPE_INTERVAL_S)
    assert missing == [], f"panels with no series for volume {volume}: {missing}"
    assert exec_in(dev, namespace, "busy", "ls /data | wc -l") != "0\n"
    labelled = query(prometheus, f'razorfs_dirty_bytes{{volume="{volume}"}}')
    assert {(s["metric"]["namespace"], s["metric"]["name"]) for s in labelled} == {(namespace, "watched")}

    with urllib.request.urlopen(f"{prometheus}/api/v1/rules", timeout=10) as answer:
        groups = json.load(answer)["data"]["groups"]
    evaluated = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(alert_rules(render(sets=ON, include_crds=False))) <= set(evaluated)
    assert all(r["health"] == "ok" for r in evaluated.values()), [
        (name, r.get("lastError")) for name, r in evaluated.items() if r["health"] != "ok"]
