"""The chart's dashboard against a real Prometheus (Debian's) scraping the real node: while a workload
writes, reads, misses a name and has its mount daemon killed (kubelet restarts it in its mount pod), every
dashboard panel's query returns at least one series for the workload's volume, and every alert
rule's expression is accepted by Prometheus' rule evaluation; and with S3 cut off behind a fault
proxy, the "dirty data not draining" alert fires for that volume and clears once S3 is back."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from razorfs.csi import mount_pods
from tests.integration.chart.helm import render
from tests.integration.chart.test_observability import ON, alert_rules, concrete_query, dashboard_queries
from tests.realparts import dev_cluster
from tests.realparts.faultproxy import FaultProxy
from tests.realparts.kubeapply import Applier
from tests.realparts.processes import ManagedProcess, RealPartMissing, free_port, wait_until

from .workloads import daemon_pid, exec_in, gone, pod, razorvolume, running, wait_for

pytestmark = [pytest.mark.kube, pytest.mark.fuse, pytest.mark.s3, pytest.mark.timeout(600)]
SCRAPE_INTERVAL_S = 2
# Which chart pods Prometheus scrapes, by component label, at their metrics port annotation.
SCRAPED = ("node", "operator", "controller")
# The chart's rules as rendered for these tests: alerts fire as soon as their condition holds, and
# dirty data older than 10 s counts as not draining (the chart's defaults are 5m and 600 s).
RULE_SETS = {**ON, "metrics.prometheusRule.for": "0s", "metrics.prometheusRule.dirtyAgeSeconds": "10"}
DIRTY_AGE_ALERT = "RazorFSDirtyDataNotDraining"


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
    [rule_object] = [o for o in render(sets=RULE_SETS, include_crds=False) if o["kind"] == "PrometheusRule"]
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
    """SIGKILL to the mount daemon of every mount pod on the node (kubelet restarts it in its pod and
    the node plugin hands it a new session)."""
    selector = f"{mount_pods.APP_LABEL}={mount_pods.APP_NAME}"
    found = core.list_namespaced_pod(dev_cluster.SYSTEM_NAMESPACE, label_selector=selector).items
    assert found, "no mount pod to kill"
    for mount_pod in found:
        os.kill(daemon_pid(dev, mount_pod.metadata.name), signal.SIGKILL)


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
    # The pod lists its files again once the killed daemon's mount is re-bound (ENOTCONN until then).
    wait_for("the workload's files listed after the daemon restart",
             lambda: exec_in(dev, namespace, "busy", "ls /data | wc -l") != "0\n")
    labelled = wait_for("the volume's dirty bytes scraped since the restart",
                        lambda: query(prometheus, f'razorfs_dirty_bytes{{volume="{volume}"}}'))
    assert {(s["metric"]["namespace"], s["metric"]["name"]) for s in labelled} == {(namespace, "watched")}

    with urllib.request.urlopen(f"{prometheus}/api/v1/rules", timeout=10) as answer:
        groups = json.load(answer)["data"]["groups"]
    evaluated = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(alert_rules(render(sets=ON, include_crds=False))) <= set(evaluated)
    assert all(r["health"] == "ok" for r in evaluated.values()), [
        (name, r.get("lastError")) for name, r in evaluated.items() if r["health"] != "ok"]


def firing(url: str, alert: str, volume: str) -> bool:
    with urllib.request.urlopen(f"{url}/api/v1/alerts", timeout=10) as answer:
        alerts = json.load(answer)["data"]["alerts"]
    return any(a["labels"].get("alertname") == alert and a["labels"].get("volume") == volume
               and a["state"] == "firing" for a in alerts)


def bridge_host(dev: dev_cluster.DevState) -> str:
    """The host address pods reach (SeaweedFS listens there too)."""
    host = urllib.parse.urlsplit(dev.s3_endpoint).hostname
    assert host is not None
    return host


def test_dirty_data_alert_fires_while_s3_is_unreachable_and_clears_after(
    dev: dev_cluster.DevState, api: Any, namespace: str, prometheus: str
) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    applier = Applier(api, field_manager="razorfs-e2e")
    with FaultProxy(dev.s3_endpoint, host=bridge_host(dev)).start() as proxy:
        outage = razorvolume("outage", namespace, dev, f"outage-{uuid.uuid4().hex[:8]}")
        outage["spec"]["s3"]["endpoint"] = proxy.endpoint_url
        applier.apply(outage)
        wait_for("claim bound", lambda: core.read_namespaced_persistent_volume_claim("outage", namespace)
                 .status.phase == "Bound")
        # Appends to a file the node has cached: they go on during the outage (its revalidation is
        # answered from the cache) and leave it dirty. A new name could not be created then: only
        # S3 knows whether it exists.
        applier.apply(pod("writer", namespace, dev.image,
                          "i=0; while true; do i=$((i+1)); echo $i >> /data/log; sleep 1; done", "outage"))
        running(core, namespace, "writer")
        volume = f"{namespace}/outage"
        wait_for("the volume's dirty age scraped", lambda: bool(
            query(prometheus, f'razorfs_oldest_dirty_age_seconds{{volume="{volume}"}}')))
        assert not firing(prometheus, DIRTY_AGE_ALERT, volume), "the alert fired while S3 was reachable"

        proxy.partition(3600)
        try:
            wait_for(f"{DIRTY_AGE_ALERT} firing for {volume}", lambda: firing(prometheus, DIRTY_AGE_ALERT, volume),
                     timeout_s=120)
        except AssertionError as exc:
            seen = {m: query(prometheus, f'{m}{{volume="{volume}"}}') for m in (
                "razorfs_oldest_dirty_age_seconds", "razorfs_dirty_bytes", "razorfs_s3_errors_total")}
            raise AssertionError(f"{exc}; proxy saw {proxy.stats}; series: {seen}") from None
        ages = query(prometheus, f'razorfs_oldest_dirty_age_seconds{{volume="{volume}"}}')
        assert max(float(s["value"][1]) for s in ages) > 10

        proxy.heal()
        wait_for(f"{DIRTY_AGE_ALERT} cleared for {volume}", lambda: not firing(prometheus, DIRTY_AGE_ALERT, volume),
                 timeout_s=180)
        # Everything the writer wrote during the outage reaches S3: nothing stays dirty.
        core.delete_namespaced_pod("writer", namespace, grace_period_seconds=0)
        wait_for("the volume drained", lambda: all(
            float(s["value"][1]) == 0 for s in query(prometheus, f'razorfs_dirty_bytes{{volume="{volume}"}}')))
        # Unstaging and the volume's deletion still go through the proxy: both end before it stops.
        wait_for("writer gone", lambda: gone(lambda: core.read_namespaced_pod("writer", namespace)))
        custom: Any = client.CustomObjectsApi(api)
        custom.delete_namespaced_custom_object("razorfs.io", "v1alpha1", namespace, "razorvolumes", "outage")
        wait_for("RazorVolume gone", lambda: gone(lambda: custom.get_namespaced_custom_object(
            "razorfs.io", "v1alpha1", namespace, "razorvolumes", "outage")))
