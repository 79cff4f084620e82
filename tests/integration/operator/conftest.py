"""Fixtures of the operator's integration tests: the RazorVolume CRD applied from the chart's file,
a `razorfs-operator` process running against the test kube-apiserver as in production, and a
stand-in for the two kube-controller-manager loops the operator relies on but the test control
plane lacks (pvc-protection and pv-protection)."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.realparts.kubeapi import ControlPlane
from tests.realparts.processes import free_port, wait_until
from tests.realparts.s3server import S3Server

REPO = Path(__file__).resolve().parents[3]
CRD_FILE = REPO / "charts" / "razorfs" / "files" / "razorvolumes-crd.yaml"
GROUP, VERSION, PLURAL = "razorfs.io", "v1alpha1", "razorvolumes"
PROTECTION_FINALIZERS = {"kubernetes.io/pvc-protection", "kubernetes.io/pv-protection"}


@pytest.fixture(scope="session")
def razorvolume_crd(kube_api_client: Any) -> dict[str, Any]:
    """Applies the CRD exactly as the chart ships it and waits until it is Established."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    manifest = yaml.safe_load(CRD_FILE.read_text())
    api = client.ApiextensionsV1Api(kube_api_client)
    name = manifest["metadata"]["name"]
    try:
        api.create_custom_resource_definition(manifest)
    except ApiException as exc:
        if exc.status != 409:
            raise
        current = api.read_custom_resource_definition(name)
        manifest["metadata"]["resourceVersion"] = current.metadata.resource_version
        api.replace_custom_resource_definition(name, manifest)

    def established() -> bool:
        crd = api.read_custom_resource_definition(name)
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    wait_until(established, 30, "RazorVolume CRD established")
    # Discovery of a new CRD lags Established by a moment; a list proves the endpoint serves.
    wait_until(
        lambda: client.CustomObjectsApi(kube_api_client).list_cluster_custom_object(GROUP, VERSION, PLURAL) is not None,
        30,
        "RazorVolume endpoint served",
    )
    return manifest


@pytest.fixture
def custom_api(kube_api_client: Any, razorvolume_crd: dict[str, Any]) -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(kube_api_client)


@pytest.fixture
def core_api(kube_api_client: Any) -> Any:
    from kubernetes import client

    return client.CoreV1Api(kube_api_client)


def razorvolume(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RazorVolume", "metadata": {"name": name}, "spec": spec}


def s3_spec(endpoint: str, bucket: str, secret: str = "s3-creds", **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"s3": {"endpoint": endpoint, "bucket": bucket, "secretRef": {"name": secret}}}
    for key, value in extra.items():
        if key in ("prefix", "region", "forcePathStyle"):
            spec["s3"][key] = value
        else:
            spec[key] = value
    return spec


def create_secret(core_api: Any, namespace: str, name: str, access_key: str, secret_key: str) -> None:
    from kubernetes import client

    data = {
        "accessKeyID": base64.b64encode(access_key.encode()).decode(),
        "secretAccessKey": base64.b64encode(secret_key.encode()).decode(),
    }
    core_api.create_namespaced_secret(
        namespace, client.V1Secret(metadata=client.V1ObjectMeta(name=name), data=data, type="Opaque")
    )


def eventually(check: Callable[[], Any], timeout_s: float = 30.0, what: str = "condition") -> Any:
    """Polls until `check` returns something truthy and returns it; fails with the last value."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    pytest.fail(f"{what} not reached within {timeout_s:.0f}s (last: {last!r})")


def events_with_reason(core_api: Any, namespace: str, name: str, reason: str, timeout_s: float = 15.0) -> list[Any]:
    """The object's events, once one with `reason` is there (kopf posts events in the background)."""

    def listed() -> list[Any] | None:
        events = core_api.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
        return events if any(e.reason == reason for e in events) else None

    found: list[Any] = eventually(listed, timeout_s, f"event {reason} on {name}")
    return found


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item["type"] == type_:
            return dict(item)
    return None


def delete_razorvolumes(custom_api: Any, core_api: Any, namespace: str, timeout_s: float = 30.0) -> None:
    """Deletes a test's pods and RazorVolumes and waits until the running operator has released
    them, so no PV outlives the test in the shared control plane. Needs an operator and the
    protection stand-in running."""
    for pod in core_api.list_namespaced_pod(namespace).items:
        core_api.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)
    for rv in custom_api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]:
        custom_api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, rv["metadata"]["name"])
    eventually(
        lambda: not custom_api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"],
        timeout_s,
        f"RazorVolumes of {namespace} released",
    )


@dataclass
class OperatorProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path
    liveness_url: str
    argv: list[str]
    env: dict[str, str]
    metrics_url: str | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signals the operator's process group; after SIGTERM gives it 5 s before SIGKILL."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def start_operator(
    kubeconfig: Path, workdir: Path, extra_env: dict[str, str] | None = None, via_kopf_cli: bool = False
) -> OperatorProcess:
    """Starts `razorfs-operator` (or, with `via_kopf_cli`, `kopf run -m razorfs_operator.handlers`)
    in its own process group and waits for its liveness endpoint."""
    port = free_port()
    liveness = f"http://127.0.0.1:{port}/healthz"
    metrics_url: str | None = None
    if via_kopf_cli:
        kopf = Path(sys.executable).with_name("kopf")
        argv = [str(kopf), "run", "-m", "razorfs_operator.handlers", "--all-namespaces", "--standalone"]
        argv += [f"--liveness={liveness}"]
    else:
        argv = [str(Path(sys.executable).with_name("razorfs-operator")), "--liveness", liveness, "--verbose"]
        metrics_port = free_port()
        argv += ["--metrics-port", str(metrics_port)]
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "RAZORFS_OPERATOR_RETRY_DELAY_S": "1",
        "RAZORFS_OPERATOR_DELETION_RETRY_DELAY_S": "1",
        "RAZORFS_OPERATOR_RESYNC_INTERVAL_S": "3",
        "RAZORFS_OPERATOR_USAGE_INTERVAL_S": "0",
        "RAZORFS_OPERATOR_S3_TIMEOUT_S": "5",
        **(extra_env or {}),
    }
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"operator-{port}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    operator = OperatorProcess(proc, log_path, liveness, argv, env, metrics_url)

    def alive_and_live() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"razorfs-operator exited with {proc.returncode}: {operator.log()[-3000:]}")
        import urllib.request

        with urllib.request.urlopen(liveness, timeout=1) as resp:
            return bool(resp.status == 200)

    try:
        wait_until(alive_and_live, 60, "razorfs-operator liveness endpoint", 0.25)
    except BaseException:
        operator.kill()
        raise
    return operator


@pytest.fixture(scope="module")
def operator_process(
    kube_apiserver: ControlPlane,
    kube_api_client: Any,
    razorvolume_crd: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """One operator per test module, started as in production (the installed console script)."""
    operator = start_operator(kube_apiserver.kubeconfig, tmp_path_factory.mktemp("operator"))
    try:
        yield operator
    finally:
        operator.kill(signal.SIGTERM)
        assert_no_secret_in(operator.log())


def assert_no_secret_in(text: str) -> None:
    from tests.realparts.s3server import TEST_SECRET_KEY

    assert TEST_SECRET_KEY not in text, "the S3 secret key leaked into operator output"
    assert WRONG_SECRET_KEY not in text, "a (wrong) S3 secret key leaked into operator output"


WRONG_SECRET_KEY = "razorfs-wrong-secret-Vb7Yq2LmR9"


class ProtectionStandIn:
    """Does what kube-controller-manager's pvc-protection and pv-protection controllers do, which
    the test control plane does not run: once a PVC is deleted and no pod uses it, or a PV is
    deleted and its claim is gone, drop the protection finalizer so the object disappears."""

    def __init__(self, kube_api_client: Any) -> None:
        from kubernetes import client

        self._core = client.CoreV1Api(kube_api_client)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="protection-stand-in", daemon=True)
        self.failure: Exception | None = None

    def __enter__(self) -> ProtectionStandIn:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        from kubernetes.client.exceptions import ApiException

        while not self._stop.wait(0.3):
            try:
                self._sweep()
            except ApiException:
                continue  # objects come and go under us; the next sweep sees the new state
            except Exception as exc:  # surfaced by the fixture's teardown, not lost with the thread
                self.failure = exc
                return

    def _sweep(self) -> None:
        pods = self._core.list_pod_for_all_namespaces().items
        used = {
            (pod.metadata.namespace, volume.persistent_volume_claim.claim_name)
            for pod in pods
            if pod.status is None or pod.status.phase not in ("Succeeded", "Failed")
            for volume in (pod.spec.volumes or [])
            if volume.persistent_volume_claim is not None
        }
        claims = {
            (c.metadata.namespace, c.metadata.name)
            for c in self._core.list_persistent_volume_claim_for_all_namespaces().items
        }
        for claim in self._core.list_persistent_volume_claim_for_all_namespaces().items:
            meta = claim.metadata
            if meta.deletion_timestamp and (meta.namespace, meta.name) not in used:
                self._drop_finalizers("pvc", meta)
        for volume in self._core.list_persistent_volume().items:
            meta, ref = volume.metadata, volume.spec.claim_ref
            if meta.deletion_timestamp and (ref is None or (ref.namespace, ref.name) not in claims):
                self._drop_finalizers("pv", meta)

    def _drop_finalizers(self, kind: str, meta: Any) -> None:
        remaining = [f for f in meta.finalizers or [] if f not in PROTECTION_FINALIZERS]
        if remaining == list(meta.finalizers or []):
            return
        # A JSON merge patch replaces the list; a strategic merge patch would merge it back.
        patch = {"metadata": {"finalizers": remaining, "resourceVersion": meta.resource_version}}
        merge = "application/merge-patch+json"
        if kind == "pvc":
            self._core.patch_namespaced_persistent_volume_claim(meta.name, meta.namespace, patch, _content_type=merge)
        else:
            self._core.patch_persistent_volume(meta.name, patch, _content_type=merge)


@pytest.fixture(scope="module")
def protection_controllers(kube_api_client: Any) -> Iterator[ProtectionStandIn]:
    with ProtectionStandIn(kube_api_client) as stand_in:
        yield stand_in
    assert stand_in.failure is None, f"the protection stand-in failed: {stand_in.failure!r}"


@pytest.fixture
def s3_secret(core_api: Any, kube_namespace: str, s3_server: S3Server) -> str:
    create_secret(core_api, kube_namespace, "s3-creds", s3_server.access_key, s3_server.secret_key)
    return "s3-creds"
