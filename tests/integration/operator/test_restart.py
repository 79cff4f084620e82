"""Killing the operator in the middle of reconciling and starting it again converges to the same
state with no duplicate PersistentVolumes or claims (each test owns its operator processes)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    GROUP,
    PLURAL,
    VERSION,
    ProtectionStandIn,
    assert_no_secret_in,
    condition,
    delete_razorvolumes,
    eventually,
    razorvolume,
    start_operator,
)

pytestmark = [pytest.mark.kube, pytest.mark.s3]
VOLUMES = 6


def _spec(s3_server: Any, bucket: str, secret: str, index: int) -> dict[str, Any]:
    return {
        "s3": {
            "endpoint": s3_server.endpoint_url,
            "bucket": bucket,
            "prefix": f"vol-{index}",
            "secretRef": {"name": secret},
        },
        "reclaimPolicy": "Delete",
    }


def _items(custom_api: Any, namespace: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = custom_api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
    return listed


def _all_ready(custom_api: Any, namespace: str) -> bool:
    items = _items(custom_api, namespace)
    return len(items) == VOLUMES and all((rv.get("status") or {}).get("phase") == "Ready" for rv in items)


def _waits_for_pod(custom_api: Any, namespace: str, name: str) -> bool:
    rv = custom_api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    in_use = condition(rv, "InUse") or {}
    return bool(in_use.get("reason") == "PodsUsingClaim" and rv["status"]["phase"] == "Terminating")


def test_operator_killed_mid_reconcile_converges_without_duplicates_after_restart(
    kube_apiserver: Any,
    custom_api: Any,
    core_api: Any,
    kube_namespace: str,
    s3_server: Any,
    bucket: str,
    s3_secret: str,
    tmp_path: Path,
    kube_api_client: Any,
) -> None:
    first = start_operator(kube_apiserver.kubeconfig, tmp_path / "first")
    try:
        for index in range(VOLUMES):
            custom_api.create_namespaced_custom_object(
                GROUP,
                VERSION,
                kube_namespace,
                PLURAL,
                razorvolume(f"v{index}", _spec(s3_server, bucket, s3_secret, index)),
            )
        # Kill as soon as the first claim exists: the other volumes are somewhere mid-way.
        # Polled tightly (not with `eventually`'s 250 ms) so the kill lands within a few API calls.
        deadline = time.monotonic() + 30
        while not core_api.list_namespaced_persistent_volume_claim(kube_namespace).items:
            assert time.monotonic() < deadline, "no PVC within 30 s"
            time.sleep(0.01)
        first.kill(signal.SIGKILL)
    finally:
        first.kill(signal.SIGKILL)
    assert not _all_ready(custom_api, kube_namespace), "the kill came too late to interrupt anything"

    # The second run uses the plain kopf entry point, which must behave the same.
    second = start_operator(kube_apiserver.kubeconfig, tmp_path / "second", via_kopf_cli=True)
    try:
        eventually(lambda: _all_ready(custom_api, kube_namespace), 60, "all RazorVolumes Ready after restart")
        volumes = _items(custom_api, kube_namespace)
        claims = core_api.list_namespaced_persistent_volume_claim(kube_namespace).items
        assert sorted(c.metadata.name for c in claims) == sorted(rv["metadata"]["name"] for rv in volumes)
        for rv in volumes:
            uid = rv["metadata"]["uid"]
            pvs = core_api.list_persistent_volume(label_selector=f"razorfs.io/volume-uid={uid}").items
            assert [pv.metadata.name for pv in pvs] == [f"razorfs-{uid}"]
            assert (condition(rv, "Bound") or {}).get("status") == "True"
        # No write-check probe is left in the bucket, not even by the killed run.
        assert "Contents" not in s3_server.client().list_objects_v2(Bucket=bucket)

        # Deletion also survives a restart: kill while it waits for a pod, then let it finish.
        with ProtectionStandIn(kube_api_client) as stand_in:
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "holder"},
                "spec": {
                    "containers": [{"name": "c", "image": "busybox"}],
                    "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "v0"}}],
                },
            }
            core_api.create_namespaced_pod(kube_namespace, pod)
            custom_api.delete_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "v0")
            eventually(lambda: _waits_for_pod(custom_api, kube_namespace, "v0"), 20, "deletion waiting on the pod")
            second.kill(signal.SIGKILL)
            core_api.delete_namespaced_pod("holder", kube_namespace, grace_period_seconds=0)
            time.sleep(1)
            assert any(rv["metadata"]["name"] == "v0" for rv in _items(custom_api, kube_namespace))
            third = start_operator(kube_apiserver.kubeconfig, tmp_path / "third")
            try:
                eventually(
                    lambda: all(rv["metadata"]["name"] != "v0" for rv in _items(custom_api, kube_namespace)),
                    30,
                    "v0 deleted by the restarted operator",
                )
                assert "v0" not in [
                    c.metadata.name for c in core_api.list_namespaced_persistent_volume_claim(kube_namespace).items
                ]
                delete_razorvolumes(custom_api, core_api, kube_namespace)
                assert not core_api.list_persistent_volume(
                    label_selector=f"razorfs.io/volume-namespace={kube_namespace}"
                ).items
            finally:
                third.kill(signal.SIGTERM)
                assert_no_secret_in(third.log())
        assert stand_in.failure is None
    finally:
        second.kill(signal.SIGTERM)
        for process in (first, second):
            assert_no_secret_in(process.log())
