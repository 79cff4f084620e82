"""The kubelet harness: plays, for one node and for RazorFS volumes only, the parts of Kubernetes that
a bare kube-apiserver lacks, so the real node plugin and operator can be driven end to end:

- scheduler: binds unscheduled pods to this node;
- external-provisioner: CreateVolume/DeleteVolume for claims on a StorageClass naming our driver;
- the PV binder and the pv/pvc-protection controllers, for volumes of our driver;
- kubelet: stages and publishes the pod's RazorFS volumes with the kubelet's paths, runs the pod's
  single container command as a local process with each mountPath replaced by the published path,
  reports the pod's phase, and on deletion stops the process, unpublishes and unstages.

It is a reconcile loop over listed state (polling, no watches), so a restart converges from whatever
it finds, except that pods it started before a restart are not re-adopted. Containers are never
restarted: an exited command makes the pod Succeeded or Failed whatever its restartPolicy.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from .csiclient import CsiClient, VolumeRequest, publish_path, staging_path

log = logging.getLogger("razorfs.kubelet")

PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"
LOG_ANNOTATION = "razorfs.io/harness-log"
# Pods standing for processes run outside the harness (dev-up's node plugin): never run or touched.
LOCAL_PROCESS_ANNOTATION = "razorfs.io/local-process"
SYNC_INTERVAL_S = 0.3
MOUNT_RETRY_S = 3.0  # after a failed stage/publish, as kubelet backs off instead of hammering
MAX_GRACE_S = 10.0
SECRET_PARAMS = {
    "provisioner": ("csi.storage.k8s.io/provisioner-secret-name", "csi.storage.k8s.io/provisioner-secret-namespace"),
    "node-stage": ("csi.storage.k8s.io/node-stage-secret-name", "csi.storage.k8s.io/node-stage-secret-namespace"),
}


class PodNotReady(Exception):
    """A pod's volumes cannot be set up yet (claim not bound, PV missing); retried next sync."""


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def substitute_mount_paths(text: str, mounts: dict[str, Path]) -> str:
    """Replaces each container mountPath (whole path components only, the longest that matches) by its
    host path, in one pass, so a host path that itself contains a mountPath is never rewritten again."""
    if not mounts:
        return text
    by_path = {m.rstrip("/") or "/": str(host) for m, host in mounts.items()}
    alternatives = "|".join(re.escape(m) for m in sorted(by_path, key=len, reverse=True))
    pattern = re.compile(f"(?<![\\w.~-])(?:{alternatives})(?=$|[/\\s'\";:|&)>])")
    return pattern.sub(lambda match: by_path[match.group(0)], text)


@dataclass
class PublishedVolume:
    pv_name: str
    volume_handle: str
    staging: Path
    target: Path


@dataclass
class LocalPod:
    namespace: str
    name: str
    uid: str
    volumes: list[PublishedVolume] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    final_phase: str | None = None


class KubeletHarness:
    def __init__(
        self,
        api_client: Any,
        node_name: str,
        kubelet_dir: Path,
        csi_endpoint: str,
        driver: str,
        controller_endpoint: str | None = None,
        log_dir: Path | None = None,
    ):
        from kubernetes import client

        # Any: the client's models are optional-everywhere; the harness reads what the API server filled.
        self.core: Any = client.CoreV1Api(api_client)
        self.storage: Any = client.StorageV1Api(api_client)
        self.node_name = node_name
        self.kubelet_dir = kubelet_dir
        self.driver = driver
        self.csi = CsiClient(csi_endpoint)
        self.controller = CsiClient(controller_endpoint) if controller_endpoint else self.csi
        self.log_dir = log_dir or kubelet_dir / "pod-logs"
        self.pods: dict[str, LocalPod] = {}
        self.staged: dict[str, tuple[str, Path]] = {}  # pv name -> (volume handle, staging path)
        self.retry_at: dict[str, float] = {}  # pod uid -> monotonic time of the next setup attempt

    # --- the loop -----------------------------------------------------------------------------

    def run(self, stop: threading.Event, interval_s: float = SYNC_INTERVAL_S) -> None:
        self.mark_node_ready()
        while not stop.is_set():
            try:
                self.sync_once()
            except Exception:  # one bad sync must not stop the node; it is logged and retried
                log.exception("sync failed")
            stop.wait(interval_s)

    def sync_once(self) -> None:
        pvs = {pv.metadata.name: pv for pv in self.core.list_persistent_volume().items}
        claims = self.core.list_persistent_volume_claim_for_all_namespaces().items
        pvcs = {(c.metadata.namespace, c.metadata.name): c for c in claims}
        pods = self.core.list_pod_for_all_namespaces().items
        self.provision_claims(pvcs, pvs)
        self.bind_volumes(pvcs, pvs)
        self.release_protections(pvcs, pvs, pods)
        self.reclaim_provisioned(pvcs, pvs)
        self.schedule_pods(pods)
        self.sync_pods(pods, pvcs, pvs)

    def mark_node_ready(self) -> None:
        from kubernetes.client.exceptions import ApiException

        condition = {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletHarnessReady",
            "message": "the RazorFS kubelet harness runs this node's pods as local processes",
            "lastHeartbeatTime": now(),
            "lastTransitionTime": now(),
        }
        with contextlib.suppress(ApiException):  # the Node object is optional for the harness
            self.core.patch_node_status(self.node_name, {"status": {"conditions": [condition]}})

    # --- external-provisioner -------------------------------------------------------------------

    def read_secret(self, name: str, namespace: str) -> dict[str, str]:
        secret = self.core.read_namespaced_secret(name, namespace)
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    @staticmethod
    def class_secret(params: dict[str, str], which: str, claim_ns: str, claim_name: str) -> tuple[str, str] | None:
        """The (name, namespace) of a StorageClass secret, with external-provisioner's templates expanded."""
        name_key, ns_key = SECRET_PARAMS[which]
        if name_key not in params:
            return None

        def expand(text: str) -> str:
            return text.replace("${pvc.namespace}", claim_ns).replace("${pvc.name}", claim_name)

        return expand(params[name_key]), expand(params.get(ns_key, claim_ns))

    def provision_claims(self, pvcs: dict[tuple[str, str], Any], pvs: dict[str, Any]) -> None:
        classes: dict[str, Any] = {}
        for pvc in pvcs.values():
            sc_name = pvc.spec.storage_class_name
            if not sc_name or pvc.spec.volume_name or pvc.metadata.deletion_timestamp:
                continue
            pv_name = f"pvc-{pvc.metadata.uid}"
            if pv_name in pvs:
                continue
            if sc_name not in classes:
                try:
                    classes[sc_name] = self.storage.read_storage_class(sc_name)
                except Exception:
                    continue
            sc = classes[sc_name]
            if sc.provisioner != self.driver:
                continue
            self.provision_claim(pvc, sc, pv_name)

    def provision_claim(self, pvc: Any, sc: Any, pv_name: str) -> None:
        params = dict(sc.parameters or {})
        secrets: dict[str, str] = {}
        ref = self.class_secret(params, "provisioner", pvc.metadata.namespace, pvc.metadata.name)
        if ref:
            secrets = self.read_secret(*ref)
        volume_params = {k: v for k, v in params.items() if not k.startswith("csi.storage.k8s.io/")}
        # What external-provisioner adds with --extra-create-metadata (the chart turns it on).
        volume_params.update(
            {
                "csi.storage.k8s.io/pvc/name": pvc.metadata.name,
                "csi.storage.k8s.io/pvc/namespace": pvc.metadata.namespace,
                "csi.storage.k8s.io/pv/name": pv_name,
            }
        )
        request = pvc.spec.resources.requests.get("storage", "1Gi") if pvc.spec.resources.requests else "1Gi"
        from kubernetes.utils import parse_quantity

        required = int(parse_quantity(request))  # type: ignore[no-untyped-call]
        access_modes = list(pvc.spec.access_modes or ["ReadWriteMany"])
        log.info("provisioning %s for claim %s/%s", pv_name, pvc.metadata.namespace, pvc.metadata.name)
        volume = self.controller.create_volume(pv_name, required, access_modes, volume_params, secrets)
        csi: dict[str, Any] = {
            "driver": self.driver,
            "volumeHandle": volume.volume_id,
            "volumeAttributes": dict(volume.volume_context),
        }
        stage_ref = self.class_secret(params, "node-stage", pvc.metadata.namespace, pvc.metadata.name)
        if stage_ref:
            csi["nodeStageSecretRef"] = {"name": stage_ref[0], "namespace": stage_ref[1]}
        pv = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv_name, "annotations": {PROVISIONED_BY: self.driver}},
            "spec": {
                "capacity": {"storage": str(volume.capacity_bytes or required)},
                "accessModes": access_modes,
                "persistentVolumeReclaimPolicy": sc.reclaim_policy or "Delete",
                "storageClassName": sc.metadata.name,
                "mountOptions": list(sc.mount_options or []),
                "volumeMode": "Filesystem",
                "csi": csi,
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": pvc.metadata.namespace,
                    "name": pvc.metadata.name,
                    "uid": pvc.metadata.uid,
                },
            },
        }
        self.core.create_persistent_volume(pv)

    def reclaim_provisioned(self, pvcs: dict[tuple[str, str], Any], pvs: dict[str, Any]) -> None:
        """A provisioned PV whose claim is gone: DeleteVolume and remove it (reclaim policy Delete)."""
        for pv in pvs.values():
            annotations = pv.metadata.annotations or {}
            if annotations.get(PROVISIONED_BY) != self.driver or pv.spec.persistent_volume_reclaim_policy != "Delete":
                continue
            ref = pv.spec.claim_ref
            claim = pvcs.get((ref.namespace, ref.name)) if ref else None
            if claim is not None and claim.metadata.uid == ref.uid:
                continue
            if pv.metadata.deletion_timestamp:
                continue
            secrets: dict[str, str] = {}
            sc = self.storage.read_storage_class(pv.spec.storage_class_name)
            params = dict(sc.parameters or {})
            secret_ref = self.class_secret(params, "provisioner", ref.namespace, ref.name) if ref else None
            if secret_ref:
                secrets = self.read_secret(*secret_ref)
            log.info("deleting provisioned volume %s (claim gone)", pv.metadata.name)
            self.controller.delete_volume(pv.spec.csi.volume_handle, secrets)
            self.core.delete_persistent_volume(pv.metadata.name)

    # --- the PV binder and protection controllers ----------------------------------------------

    def bind_volumes(self, pvcs: dict[tuple[str, str], Any], pvs: dict[str, Any]) -> None:
        for pv in pvs.values():
            if not pv.spec.csi or pv.spec.csi.driver != self.driver or pv.metadata.deletion_timestamp:
                continue
            ref = pv.spec.claim_ref
            claim = pvcs.get((ref.namespace, ref.name)) if ref else None
            if claim is None or claim.metadata.deletion_timestamp:
                if pv.status and pv.status.phase == "Bound":
                    self.core.patch_persistent_volume_status(pv.metadata.name, {"status": {"phase": "Released"}})
                elif not pv.status or pv.status.phase in (None, "Pending"):
                    self.core.patch_persistent_volume_status(pv.metadata.name, {"status": {"phase": "Available"}})
                continue
            if ref.uid and ref.uid != claim.metadata.uid:
                continue
            if claim.spec.volume_name not in (None, "", pv.metadata.name):
                continue
            if not ref.uid:
                self.core.patch_persistent_volume(pv.metadata.name, {"spec": {"claimRef": {"uid": claim.metadata.uid}}})
            if not claim.spec.volume_name:
                self.core.patch_namespaced_persistent_volume_claim(
                    claim.metadata.name, claim.metadata.namespace, {"spec": {"volumeName": pv.metadata.name}}
                )
            if not pv.status or pv.status.phase != "Bound":
                self.core.patch_persistent_volume_status(pv.metadata.name, {"status": {"phase": "Bound"}})
            if not claim.status or claim.status.phase != "Bound":
                self.core.patch_namespaced_persistent_volume_claim_status(
                    claim.metadata.name,
                    claim.metadata.namespace,
                    {
                        "status": {
                            "phase": "Bound",
                            "accessModes": list(pv.spec.access_modes or []),
                            "capacity": dict(pv.spec.capacity or {}),
                        }
                    },
                )
                log.info("bound %s/%s to %s", claim.metadata.namespace, claim.metadata.name, pv.metadata.name)

    def release_protections(self, pvcs: dict[tuple[str, str], Any], pvs: dict[str, Any], pods: list[Any]) -> None:
        used = {
            (pod.metadata.namespace, v.persistent_volume_claim.claim_name)
            for pod in pods
            if (pod.status is None or pod.status.phase not in ("Succeeded", "Failed")) or pod.metadata.uid in self.pods
            for v in (pod.spec.volumes or [])
            if v.persistent_volume_claim
        }
        for key, claim in pvcs.items():
            finalizers = claim.metadata.finalizers or []
            if claim.metadata.deletion_timestamp and PVC_PROTECTION in finalizers and key not in used:
                self.remove_finalizer("pvc", claim, PVC_PROTECTION)
        for pv in pvs.values():
            finalizers = pv.metadata.finalizers or []
            if not pv.metadata.deletion_timestamp or PV_PROTECTION not in finalizers:
                continue
            if not pv.spec.csi or pv.spec.csi.driver != self.driver or pv.metadata.name in self.staged:
                continue
            ref = pv.spec.claim_ref
            claim = pvcs.get((ref.namespace, ref.name)) if ref else None
            if claim is None or claim.metadata.deletion_timestamp:
                self.remove_finalizer("pv", pv, PV_PROTECTION)

    def remove_finalizer(self, kind: str, obj: Any, finalizer: str) -> None:
        from kubernetes.client.exceptions import ApiException

        remaining = [f for f in (obj.metadata.finalizers or []) if f != finalizer]
        # A JSON merge patch replaces the list (a strategic merge patch would merge it and remove
        # nothing); the resourceVersion makes it a compare-and-swap, so finalizers added meanwhile survive.
        body = {"metadata": {"finalizers": remaining, "resourceVersion": obj.metadata.resource_version}}
        merge = "application/merge-patch+json"
        try:
            if kind == "pvc":
                self.core.patch_namespaced_persistent_volume_claim(
                    obj.metadata.name, obj.metadata.namespace, body, _content_type=merge
                )
            else:
                self.core.patch_persistent_volume(obj.metadata.name, body, _content_type=merge)
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    # --- scheduler ------------------------------------------------------------------------------

    def schedule_pods(self, pods: list[Any]) -> None:
        from kubernetes.client.exceptions import ApiException

        for pod in pods:
            if pod.spec.node_name or pod.metadata.deletion_timestamp:
                continue
            if pod.spec.scheduler_name not in (None, "default-scheduler"):
                continue
            binding = {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": pod.metadata.name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
            }
            try:
                # The client cannot deserialize the Binding reply; we need none of it.
                self.core.create_namespaced_pod_binding(
                    pod.metadata.name, pod.metadata.namespace, binding, _preload_content=False
                )
                pod.spec.node_name = self.node_name
                log.info("scheduled %s/%s to %s", pod.metadata.namespace, pod.metadata.name, self.node_name)
            except ApiException as exc:
                if exc.status != 409:
                    raise

    # --- kubelet --------------------------------------------------------------------------------

    def sync_pods(self, pods: list[Any], pvcs: dict[tuple[str, str], Any], pvs: dict[str, Any]) -> None:
        seen: set[str] = set()
        for pod in pods:
            if pod.spec.node_name != self.node_name:
                continue
            if LOCAL_PROCESS_ANNOTATION in (pod.metadata.annotations or {}):
                continue
            uid = pod.metadata.uid
            seen.add(uid)
            if pod.metadata.deletion_timestamp:
                self.terminate_pod(uid, pod)
                continue
            local = self.pods.get(uid)
            if local is None:
                if pod.status and pod.status.phase in ("Succeeded", "Failed"):
                    continue
                if time.monotonic() < self.retry_at.get(uid, 0.0):
                    continue
                try:
                    self.start_pod(pod, pvcs, pvs)
                    self.retry_at.pop(uid, None)
                except PodNotReady as why:
                    log.debug("pod %s/%s waits: %s", pod.metadata.namespace, pod.metadata.name, why)
                    self.retry_at[uid] = time.monotonic() + MOUNT_RETRY_S
                continue
            self.report_exit(local)
        for uid in list(self.pods):
            if uid not in seen:  # deleted with grace period 0 by someone else
                self.terminate_pod(uid, None)

    def volume_request(self, pod: Any, claim_name: str, read_only: bool, pvcs: dict[tuple[str, str], Any],
                       pvs: dict[str, Any]) -> tuple[Any, VolumeRequest] | None:
        claim = pvcs.get((pod.metadata.namespace, claim_name))
        if claim is None:
            raise PodNotReady(f"claim {claim_name} not found")
        if not claim.status or claim.status.phase != "Bound" or not claim.spec.volume_name:
            raise PodNotReady(f"claim {claim_name} not bound")
        pv = pvs.get(claim.spec.volume_name)
        if pv is None:
            raise PodNotReady(f"volume {claim.spec.volume_name} not found")
        if not pv.spec.csi or pv.spec.csi.driver != self.driver:
            return None  # not ours: this harness only mounts RazorFS volumes
        secrets: dict[str, str] = {}
        ref = pv.spec.csi.node_stage_secret_ref
        if ref:
            secrets = self.read_secret(ref.name, ref.namespace)
        return pv, VolumeRequest(
            volume_handle=pv.spec.csi.volume_handle,
            access_modes=list(pv.spec.access_modes or []),
            volume_context=dict(pv.spec.csi.volume_attributes or {}),
            stage_secrets=secrets,
            mount_flags=list(pv.spec.mount_options or []),
            read_only=read_only or bool(pv.spec.csi.read_only),
        )

    def start_pod(self, pod: Any, pvcs: dict[tuple[str, str], Any], pvs: dict[str, Any]) -> None:
        containers = pod.spec.containers or []
        # No images here: the command is all there is to run, so it must be spelled out.
        unsupported = ("the harness runs single-container pods" if len(containers) != 1
                       else "the harness needs the container's command (it cannot run an image's entrypoint)"
                       if not containers[0].command else "")
        if unsupported:
            self.set_phase(pod, "Failed", reason="Unsupported", message=unsupported)
            self.pods[pod.metadata.uid] = LocalPod(pod.metadata.namespace, pod.metadata.name, pod.metadata.uid,
                                                   final_phase="Failed")
            return
        container = containers[0]
        host_paths: dict[str, Path] = {}  # pod volume name -> host path
        requests: list[tuple[Any, VolumeRequest]] = []
        pod_dir = self.kubelet_dir / "pods" / pod.metadata.uid
        read_only_volumes = {m.name for m in (container.volume_mounts or []) if m.read_only}
        for volume in pod.spec.volumes or []:
            if volume.persistent_volume_claim:
                resolved = self.volume_request(
                    pod, volume.persistent_volume_claim.claim_name,
                    bool(volume.persistent_volume_claim.read_only) or volume.name in read_only_volumes, pvcs, pvs,
                )
                if resolved:
                    requests.append(resolved)
                    pv_name = resolved[0].metadata.name
                    host_paths[volume.name] = publish_path(self.kubelet_dir, pod.metadata.uid, pv_name)
            elif volume.empty_dir is not None:
                path = pod_dir / "volumes" / "kubernetes.io~empty-dir" / volume.name
                path.mkdir(parents=True, exist_ok=True)
                host_paths[volume.name] = path
        local = LocalPod(pod.metadata.namespace, pod.metadata.name, pod.metadata.uid)
        self.pods[pod.metadata.uid] = local
        pod_context = {
            "csi.storage.k8s.io/pod.name": pod.metadata.name,
            "csi.storage.k8s.io/pod.namespace": pod.metadata.namespace,
            "csi.storage.k8s.io/pod.uid": pod.metadata.uid,
            "csi.storage.k8s.io/serviceAccount.name": pod.spec.service_account_name or "default",
            "csi.storage.k8s.io/ephemeral": "false",
        }
        try:
            for pv, request in requests:
                staging = self.stage_volume(pv.metadata.name, request)
                target = publish_path(self.kubelet_dir, pod.metadata.uid, pv.metadata.name)
                # kubelet creates the target's parent; the plugin creates the target itself.
                target.parent.mkdir(parents=True, exist_ok=True)
                self.csi.publish(request, staging, target, pod_context)
                local.volumes.append(PublishedVolume(pv.metadata.name, request.volume_handle, staging, target))
                log.info("published %s for pod %s/%s at %s", pv.metadata.name, local.namespace, local.name, target)
        except Exception as exc:
            message = exc.details() if isinstance(exc, grpc.RpcError) else str(exc)
            log.warning("setting up volumes of %s/%s failed (retrying): %s", local.namespace, local.name, message)
            del self.pods[pod.metadata.uid]
            self.tear_down_volumes(local)
            self.record_event(pod, "FailedMount", str(message).splitlines()[0][:300])
            raise PodNotReady(f"volume setup failed: {message}") from exc
        mounts = {m.mount_path: Path(host_paths[m.name]) / (m.sub_path or "")
                  for m in (container.volume_mounts or []) if m.name in host_paths}
        argv = [substitute_mount_paths(a, mounts) for a in [*(container.command or []), *(container.args or [])]]
        env = {e.name: substitute_mount_paths(e.value or "", mounts)
               for e in (container.env or []) if e.value_from is None}
        self.log_dir.mkdir(parents=True, exist_ok=True)
        local.log_path = self.log_dir / f"{local.namespace}_{local.name}_{local.uid}.log"
        cwd = substitute_mount_paths(container.working_dir, mounts) if container.working_dir else str(pod_dir)
        Path(cwd).mkdir(parents=True, exist_ok=True)
        with open(local.log_path, "ab") as out:
            local.process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(pod_dir), **env},
                start_new_session=True,
            )
        with contextlib.suppress(Exception):  # an annotation is a convenience, not part of the contract
            self.core.patch_namespaced_pod(local.name, local.namespace,
                                           {"metadata": {"annotations": {LOG_ANNOTATION: str(local.log_path)}}})
        self.set_phase(pod, "Running")
        log.info("started pod %s/%s as pid %d", local.namespace, local.name, local.process.pid)

    def stage_volume(self, pv_name: str, request: VolumeRequest) -> Path:
        staging = staging_path(self.kubelet_dir, self.driver, request.volume_handle)
        if pv_name not in self.staged:
            staging.mkdir(parents=True, exist_ok=True)
            self.csi.stage(request, staging)
            self.staged[pv_name] = (request.volume_handle, staging)
            log.info("staged %s at %s", pv_name, staging)
        return staging

    def report_exit(self, local: LocalPod) -> None:
        if local.process is None or local.final_phase is not None:
            return
        code = local.process.poll()
        if code is None:
            return
        local.final_phase = "Succeeded" if code == 0 else "Failed"
        pod = self.core.read_namespaced_pod(local.name, local.namespace)
        self.set_phase(pod, local.final_phase, exit_code=code)
        log.info("pod %s/%s exited with %d", local.namespace, local.name, code)

    def terminate_pod(self, uid: str, pod: Any) -> None:
        from kubernetes.client import V1DeleteOptions, V1Preconditions
        from kubernetes.client.exceptions import ApiException

        local = self.pods.pop(uid, None)
        if local is not None:
            grace = MAX_GRACE_S
            if pod is not None and pod.spec.termination_grace_period_seconds is not None:
                grace = min(float(pod.spec.termination_grace_period_seconds), MAX_GRACE_S)
            self.stop_process(local, grace)
            self.tear_down_volumes(local)
        if pod is not None:
            # What kubelet does once the containers are gone: finish the graceful deletion.
            try:
                self.core.delete_namespaced_pod(
                    pod.metadata.name, pod.metadata.namespace,
                    body=V1DeleteOptions(grace_period_seconds=0, preconditions=V1Preconditions(uid=uid)),
                )
            except ApiException as exc:
                if exc.status not in (404, 409):
                    raise
            log.info("pod %s/%s terminated", pod.metadata.namespace, pod.metadata.name)

    def stop_process(self, local: LocalPod, grace_s: float) -> None:
        proc = local.process
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def tear_down_volumes(self, local: LocalPod) -> None:
        """Unpublish the pod's volumes, then unstage each one no other local pod still uses."""
        for volume in local.volumes:
            self.csi.unpublish(volume.volume_handle, volume.target)
            log.info("unpublished %s from %s", volume.pv_name, volume.target)
        in_use = {v.pv_name for p in self.pods.values() for v in p.volumes}
        for volume in local.volumes:
            if volume.pv_name in in_use or volume.pv_name not in self.staged:
                continue
            handle, staging = self.staged[volume.pv_name]
            self.csi.unstage(handle, staging)
            del self.staged[volume.pv_name]
            log.info("unstaged %s", volume.pv_name)
        local.volumes = []
        pod_dir = self.kubelet_dir / "pods" / local.uid
        if pod_dir.exists():
            # Only empty directories are left once every target is unpublished; never follow a mount.
            shutil.rmtree(pod_dir, ignore_errors=True)

    def set_phase(self, pod: Any, phase: str, exit_code: int | None = None, reason: str = "",
                  message: str = "") -> None:
        container = pod.spec.containers[0] if pod.spec.containers else None
        ready = "True" if phase == "Running" else "False"
        status: dict[str, Any] = {
            "phase": phase,
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now()},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now()},
                {"type": "ContainersReady", "status": ready, "lastTransitionTime": now()},
                {"type": "Ready", "status": ready, "lastTransitionTime": now()},
            ],
        }
        if phase == "Running":
            status["startTime"] = now()
        if reason:
            status["reason"], status["message"] = reason, message
        if container is not None:
            if phase == "Running":
                state: dict[str, Any] = {"running": {"startedAt": now()}}
            else:
                state = {"terminated": {"exitCode": exit_code if exit_code is not None else 1, "finishedAt": now(),
                                        "reason": "Completed" if exit_code == 0 else "Error"}}
            status["containerStatuses"] = [{
                "name": container.name, "ready": phase == "Running", "restartCount": 0,
                "image": container.image or "", "imageID": "", "state": state,
            }]
        self.core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, {"status": status})

    def record_event(self, pod: Any, reason: str, message: str) -> None:
        event = {
            "metadata": {"generateName": f"{pod.metadata.name}.", "namespace": pod.metadata.namespace},
            "involvedObject": {"kind": "Pod", "name": pod.metadata.name, "namespace": pod.metadata.namespace,
                               "uid": pod.metadata.uid, "apiVersion": "v1"},
            "reason": reason, "message": message, "type": "Warning",
            "source": {"component": "kubelet", "host": self.node_name},
            "firstTimestamp": now(), "lastTimestamp": now(), "count": 1,
        }
        with contextlib.suppress(Exception):  # events are best effort, as in kubelet
            self.core.create_namespaced_event(pod.metadata.namespace, event)

    def shutdown(self) -> None:
        """Stop every local pod and release its volumes, as a node drain would."""
        for uid in list(self.pods):
            local = self.pods.pop(uid)
            self.stop_process(local, MAX_GRACE_S)
            try:
                self.tear_down_volumes(local)
            except Exception:
                log.exception("releasing the volumes of %s/%s failed", local.namespace, local.name)
        self.csi.close()
        if self.controller is not self.csi:
            self.controller.close()


def main(argv: list[str] | None = None) -> None:
    from kubernetes import config

    parser = argparse.ArgumentParser(description="RazorFS kubelet harness for one local node")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node-name", default="local")
    parser.add_argument("--kubelet-dir", required=True, type=Path)
    parser.add_argument("--csi-endpoint", required=True, help="unix:///path/to/csi.sock of the node plugin")
    parser.add_argument("--controller-endpoint", help="CSI controller socket (default: the node plugin's)")
    parser.add_argument("--driver", default="razorfs.csi.io")
    parser.add_argument("--log-dir", type=Path)
    parser.add_argument("--interval", type=float, default=SYNC_INTERVAL_S)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import urllib3

    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # loopback apiserver, self-signed
    api = config.new_client_from_config(config_file=args.kubeconfig)  # type: ignore[no-untyped-call]
    harness = KubeletHarness(api, args.node_name, args.kubelet_dir, args.csi_endpoint, args.driver,
                             args.controller_endpoint, args.log_dir)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        harness.run(stop, args.interval)
    finally:
        harness.shutdown()


if __name__ == "__main__":
    main()
