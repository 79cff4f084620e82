"""Mount pods: each mount's daemon in a pod of its own, so a restart, upgrade or crash of the node
plugin never takes a volume down.

The plugin creates the pod through the Kubernetes API in its own namespace, pinned to its node
(`nodeName`), owned by nobody (a DaemonSet rollout leaves it alone), named after the node and the
mount so that a restarted plugin finds it again. The pod runs the same image's `razorfs serve`
unprivileged (no capability, not root, read-only root filesystem): it gets its FUSE session, its
arguments and its credentials over the handover socket in the one host directory it mounts.
Kubelet restarts a daemon that dies (OOM, kill); the plugin sees the dead mount, mounts a new
session and hands it to the restarted container, whose first act is to replay its journal.

What the pods look like (image, resources, priority class, tolerations) comes from the chart's
`mountPod` values, read from a JSON file (`razorfs-node --mount-pods FILE`)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from razorfs.csi.daemon_hosts import READY_TIMEOUT_S, handover_socket, mount_dir
from razorfs.csi.errors import DaemonFailed, Unavailable
from razorfs.csi.state_store import VolumeRecord
from razorfs.mount.handover import (
    HANDOVER_SOCKET_FLAG,
    HANDOVER_SOCKET_NAME,
    SERVE_COMMAND,
    Handover,
    HandoverError,
    HandoverUnavailable,
    offer,
)

log = logging.getLogger(__name__)

POD_MOUNT_DIR = Path("/razorfs")
APP_LABEL = "app.kubernetes.io/name"
APP_NAME = "razorfs-mount"
NODE_LABEL = "razorfs.io/node"
MOUNT_LABEL = "razorfs.io/mount"
VOLUME_ANNOTATION = "razorfs.io/volume-id"
CONTAINER_NAME = "daemon"
# A pod left behind by a mount no longer recorded is removed after this long (it may belong to a
# stage that is recording it right now).
ORPHAN_GRACE_S = 60.0
# How long a dying daemon may flush before kubelet kills it (SIGTERM flushes).
TERMINATION_GRACE_S = 120
_API_TIMEOUT_S = 10.0
# A container restarted by kubelet (first restart at once, later ones backed off) is waited for
# this long before the pod itself is replaced.
_RESTART_WAIT_S = 20.0
_OFFER_SLICE_S = 1.0


@dataclass(frozen=True)
class MountPodTemplate:
    """What every mount pod of this plugin looks like (the chart's `mountPod` values)."""

    namespace: str
    node_name: str
    image: str
    host_cache_root: Path  # the node's path of the plugin's cache root
    cache_root: Path  # the same directory as the plugin sees it
    image_pull_policy: str = "IfNotPresent"
    run_as_user: int = 65532
    resources: dict[str, Any] = field(default_factory=dict)
    priority_class_name: str | None = None
    tolerations: list[dict[str, Any]] = field(default_factory=lambda: [{"operator": "Exists"}])
    metrics_port: int | None = None
    env: dict[str, str] = field(default_factory=dict)  # log level and format, never a secret
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: Path, node_name: str, cache_root: Path) -> MountPodTemplate:
        data = json.loads(path.read_text())
        return cls(
            namespace=str(data["namespace"]),
            node_name=node_name,
            image=str(data["image"]),
            host_cache_root=Path(data["hostCacheRoot"]),
            cache_root=cache_root,
            image_pull_policy=str(data.get("imagePullPolicy") or "IfNotPresent"),
            run_as_user=int(data.get("runAsUser", 65532)),
            resources=dict(data.get("resources") or {}),
            priority_class_name=data.get("priorityClassName") or None,
            tolerations=list(data.get("tolerations") or []),
            metrics_port=int(data["metricsPort"]) if data.get("metricsPort") else None,
            env={str(k): str(v) for k, v in (data.get("env") or {}).items()},
            labels={str(k): str(v) for k, v in (data.get("labels") or {}).items()},
        )


def pod_name(node_name: str, mount_key: str) -> str:
    digest = hashlib.sha256(f"{node_name}\0{mount_key}".encode()).hexdigest()[:16]
    return f"razorfs-mount-{digest}"


def node_label(node_name: str) -> str:
    """A label value for a node name (names may be longer than a label value may be)."""
    if len(node_name) <= 63:
        return node_name
    return hashlib.sha256(node_name.encode()).hexdigest()[:40]


def pod_argv(argv: list[str], host_mount_dir: Path) -> list[str]:
    """The mount's arguments with its host paths as the pod sees them (under /razorfs)."""
    host = str(host_mount_dir)
    return [str(POD_MOUNT_DIR) + value[len(host) :] if value.startswith(host + "/") else value for value in argv]


class MountPods:
    """The DaemonHost of the chart: mount daemons in their own pods."""

    registers_mounts = True

    def __init__(self, template: MountPodTemplate, api: Any, orphan_grace_s: float = ORPHAN_GRACE_S) -> None:
        self.template = template
        self.api = api  # kubernetes.client.CoreV1Api
        self.orphan_grace_s = orphan_grace_s

    @classmethod
    def in_cluster(cls, template: MountPodTemplate, kubeconfig: Path | None) -> MountPods:
        from kubernetes import client, config

        if kubeconfig is not None:
            api_client = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        else:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            api_client = client.ApiClient()
        return cls(template, client.CoreV1Api(api_client))

    # -- the pod ----------------------------------------------------------------------------------

    def manifest(self, record: VolumeRecord) -> dict[str, Any]:
        t = self.template
        key = mount_dir(record).name
        host_dir = t.host_cache_root / key
        container: dict[str, Any] = {
            "name": CONTAINER_NAME,
            "image": t.image,
            "imagePullPolicy": t.image_pull_policy,
            "command": ["razorfs", SERVE_COMMAND, HANDOVER_SOCKET_FLAG, str(POD_MOUNT_DIR / HANDOVER_SOCKET_NAME)],
            "env": [{"name": "NODE_ID", "value": t.node_name}]
            + [{"name": name, "value": value} for name, value in sorted(t.env.items())],
            "resources": t.resources,
            "securityContext": {
                "privileged": False,
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": [
                {"name": "mount-dir", "mountPath": str(POD_MOUNT_DIR)},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        }
        if t.metrics_port:
            container["ports"] = [{"name": "metrics", "containerPort": t.metrics_port, "protocol": "TCP"}]
        spec: dict[str, Any] = {
            "nodeName": t.node_name,
            # A daemon that dies is restarted in place; one that finished (flushed for an
            # unstage, or unmounted) leaves the pod Succeeded, and the plugin deletes or replaces it.
            "restartPolicy": "OnFailure",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": t.run_as_user,
                "runAsGroup": t.run_as_user,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "tolerations": t.tolerations,
            "containers": [container],
            "volumes": [
                {"name": "mount-dir", "hostPath": {"path": str(host_dir), "type": "Directory"}},
                {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
            ],
        }
        # The volume's own settings (RazorVolume spec.mountPod) replace the template's.
        own = json.loads(record.mount_pod) if record.mount_pod else {}
        if "resources" in own:
            container["resources"] = own["resources"]
        if "tolerations" in own:
            spec["tolerations"] = own["tolerations"]
        priority_class = own.get("priorityClassName", t.priority_class_name)
        if priority_class:
            spec["priorityClassName"] = priority_class
        labels = {**t.labels, APP_LABEL: APP_NAME, NODE_LABEL: node_label(t.node_name), MOUNT_LABEL: key}
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name(t.node_name, key),
                "namespace": t.namespace,
                "labels": labels,
                "annotations": {VOLUME_ANNOTATION: record.volume_id},
            },
            "spec": spec,
        }

    def _read(self, name: str) -> Any | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.api.read_namespaced_pod(name, self.template.namespace, _request_timeout=_API_TIMEOUT_S)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def _create(self, record: VolumeRecord) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            manifest = self.manifest(record)
            self.api.create_namespaced_pod(self.template.namespace, manifest, _request_timeout=_API_TIMEOUT_S)
        except ApiException as err:
            if err.status != 409:  # created meanwhile (or still terminating: waited for below)
                raise

    def _delete(self, name: str, grace_s: int | None = None) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.api.delete_namespaced_pod(
                name, self.template.namespace, grace_period_seconds=grace_s, _request_timeout=_API_TIMEOUT_S
            )
        except ApiException as err:
            if err.status != 404:
                raise

    async def _api(self, call: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(call, *args)
        except Exception as err:  # the API's error bodies name objects, never our credentials
            raise Unavailable(f"Kubernetes API: {type(err).__name__}: {getattr(err, 'reason', '') or err}") from None

    async def _ensure_pod(self, record: VolumeRecord, replace: bool) -> None:
        """A pod for the mount that is not on its way out; `replace` deletes a running one first
        (its daemon does not take sessions any more)."""
        name = pod_name(self.template.node_name, mount_dir(record).name)
        deadline = time.monotonic() + TERMINATION_GRACE_S + 30
        while time.monotonic() < deadline:
            pod = await self._api(self._read, name)
            if pod is None:
                await self._api(self._create, record)
                log.info("created mount pod %s for volume %s", name, record.volume_id)
                return
            phase = pod.status.phase if pod.status else None
            if pod.metadata.deletion_timestamp is None and phase not in ("Succeeded", "Failed") and not replace:
                return
            if pod.metadata.deletion_timestamp is None:
                log.warning("replacing mount pod %s (phase %s) of volume %s", name, phase, record.volume_id)
                await self._api(self._delete, name)
            replace = False
            await asyncio.sleep(0.5)
        raise DaemonFailed(f"mount pod {name} did not go away to be replaced")

    # -- DaemonHost -----------------------------------------------------------------------------

    async def start(self, record: VolumeRecord, request: Handover, fuse_fd: int, log_path: Path) -> None:
        self._prepare_dir(record)
        await self._ensure_pod(record, replace=False)
        socket_path = handover_socket(record)
        translated = Handover(pod_argv(request.argv, mount_dir(record)), request.env)
        if self.template.metrics_port:
            translated.argv.extend(["--metrics-port", str(self.template.metrics_port)])
        started = time.monotonic()
        replaced = False
        while True:
            try:
                await asyncio.to_thread(offer, socket_path, translated, fuse_fd, _OFFER_SLICE_S, READY_TIMEOUT_S)
                return
            except HandoverUnavailable:
                waited = time.monotonic() - started
                if waited > READY_TIMEOUT_S:
                    raise DaemonFailed(
                        f"mount pod of volume {record.volume_id} took no session in {READY_TIMEOUT_S:.0f}s"
                    ) from None
                # Not waiting for a session: still starting (image, imports), restarting after
                # a crash, or alive and stuck on a session whose mount is gone: replaced once.
                stuck = waited > _RESTART_WAIT_S and not replaced
                await self._ensure_pod(record, replace=stuck)
                replaced = replaced or stuck
            except HandoverError as err:
                raise DaemonFailed(f"mount pod of volume {record.volume_id}: {err}") from None

    def _prepare_dir(self, record: VolumeRecord) -> None:
        """The mount directory belongs to the pod's user (the plugin created it as root)."""
        uid = self.template.run_as_user
        directory = mount_dir(record)
        for path in (directory, Path(record.cache_dir)):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if Path(record.cache_dir).stat().st_uid == uid and directory.stat().st_uid == uid:
            for entry in directory.iterdir():
                if entry.is_file() and entry.stat().st_uid != uid:  # a CA bundle just written
                    os.chown(entry, uid, uid)
            return
        for root, dirs, files in os.walk(directory):
            os.chown(root, uid, uid)
            for name in dirs + files:
                os.chown(os.path.join(root, name), uid, uid, follow_symlinks=False)

    def describe(self, record: VolumeRecord) -> str:
        return f"mount pod {pod_name(self.template.node_name, mount_dir(record).name)}"

    def is_alive(self, record: VolumeRecord) -> bool | None:
        return None  # the pod's process is not ours to see: the mount's health tells

    async def discard(self, record: VolumeRecord) -> None:
        return None  # kubelet restarts the container; start() replaces a pod that stays stuck

    async def abandon(self, record: VolumeRecord) -> None:
        name = pod_name(self.template.node_name, mount_dir(record).name)
        try:
            await self._api(self._delete, name)
        except Unavailable as exc:  # the sweep removes it later
            log.warning("mount pod %s of a failed stage not deleted: %s", name, exc)

    async def retire(self, record: VolumeRecord, timeout_s: float) -> None:
        name = pod_name(self.template.node_name, mount_dir(record).name)
        await self._api(self._delete, name)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if await self._api(self._read, name) is None:
                log.info("removed mount pod %s of volume %s", name, record.volume_id)
                return
            await asyncio.sleep(0.5)
        raise Unavailable(f"mount pod {name} of volume {record.volume_id} did not go away")

    async def sweep(self, known_mounts: set[str]) -> None:
        selector = f"{APP_LABEL}={APP_NAME},{NODE_LABEL}={node_label(self.template.node_name)}"
        pods = await self._api(self._list, selector)
        now = time.time()
        for pod in pods:
            key = (pod.metadata.labels or {}).get(MOUNT_LABEL, "")
            created = pod.metadata.creation_timestamp
            if key in known_mounts or pod.metadata.deletion_timestamp is not None:
                continue
            if created is not None and now - created.timestamp() < self.orphan_grace_s:
                continue
            log.warning("removing mount pod %s: no volume on this node uses it", pod.metadata.name)
            await self._api(self._delete, pod.metadata.name)

    def _list(self, selector: str) -> list[Any]:
        namespace = self.template.namespace
        reply = self.api.list_namespaced_pod(namespace, label_selector=selector, _request_timeout=_API_TIMEOUT_S)
        return list(reply.items)

    def close(self) -> None:
        return None
