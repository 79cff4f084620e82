"""The thin layer between the operator's decisions and the Kubernetes API: reads Secrets, pods and
node plugin pods, creates and patches the PV and PVC, patches RazorVolume status. Calls block (the
official client); callers run them on the worker pool. Objects come back as plain dicts, and API
errors other than the expected 404/409 become KubernetesRequestFailed here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from razorfs.volume_spec import CRD_GROUP, CRD_PLURAL, CRD_VERSION

from .errors import KubernetesRequestFailed, SecretNotFound
from .volume_objects import Manifest

_FINISHED_POD_PHASES = {"Succeeded", "Failed"}


def load_api_client(connections: int) -> Any:
    """In-cluster credentials when running in a pod, else the kubeconfig ($KUBECONFIG or ~/.kube).
    `connections`: how many calls run at once (the worker threads); the pool keeps that many
    connections, otherwise the ones above its default size are closed after each call and the
    next call pays a new TLS handshake."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = max(connections, configuration.connection_pool_maxsize or 0)
    return client.ApiClient(configuration)


@dataclass(frozen=True)
class NodePluginPod:
    pod_name: str
    node_name: str
    pod_ip: str


class Cluster:
    def __init__(self, api_client: Any) -> None:
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)

    # --- reads -------------------------------------------------------------------------------
    def read_secret_data(self, namespace: str, name: str) -> dict[str, str]:
        found = self._get(lambda: self._core.read_namespaced_secret(name, namespace, _preload_content=False))
        if found is None:
            raise SecretNotFound(f"Secret {namespace}/{name} not found")
        data: dict[str, str] = found.get("data") or {}
        return data

    def get_claim(self, namespace: str, name: str) -> Manifest | None:
        return self._get(
            lambda: self._core.read_namespaced_persistent_volume_claim(name, namespace, _preload_content=False)
        )

    def get_volume(self, name: str) -> Manifest | None:
        return self._get(lambda: self._core.read_persistent_volume(name, _preload_content=False))

    def get_razorvolume(self, namespace: str, name: str) -> Manifest | None:
        return self._get(
            lambda: self._custom.get_namespaced_custom_object(
                CRD_GROUP, CRD_VERSION, namespace, CRD_PLURAL, name, _preload_content=False
            )
        )

    def list_pods(self, namespace: str) -> list[Manifest]:
        with _api_errors(f"list pods in {namespace}"):
            pods = _json(self._core.list_namespaced_pod(namespace, _preload_content=False))
        items: list[Manifest] = pods.get("items") or []
        return items

    def node_plugin_pods(self, namespace: str, selector: str) -> list[NodePluginPod]:
        with _api_errors(f"list node plugin pods in {namespace}"):
            pods = _json(self._core.list_namespaced_pod(namespace, label_selector=selector, _preload_content=False))
        found = []
        for pod in pods.get("items", []):
            ip = (pod.get("status") or {}).get("podIP")
            if not ip or pod["metadata"].get("deletionTimestamp"):
                continue
            node = (pod.get("spec") or {}).get("nodeName") or pod["metadata"]["name"]
            found.append(NodePluginPod(pod["metadata"]["name"], node, ip))
        return found

    # --- writes ------------------------------------------------------------------------------
    def create_claim(self, manifest: Any) -> tuple[Manifest, bool]:
        """Creates the claim; if one of that name exists already (an earlier, interrupted run, or
        someone else's), returns that one instead. The flag says whether this call created it."""
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        with _api_errors(f"create PersistentVolumeClaim {namespace}/{name}"):
            try:
                created = self._core.create_namespaced_persistent_volume_claim(
                    namespace, manifest, _preload_content=False
                )
                return _json(created), True
            except ApiException as exc:
                if exc.status != 409:
                    raise
        existing = self.get_claim(namespace, name)
        if existing is None:
            raise KubernetesRequestFailed(f"PersistentVolumeClaim {namespace}/{name} vanished while being created")
        return existing, False

    def create_volume(self, manifest: Any) -> tuple[Manifest, bool]:
        """Like create_claim, for the PersistentVolume."""
        name = manifest["metadata"]["name"]
        with _api_errors(f"create PersistentVolume {name}"):
            try:
                return _json(self._core.create_persistent_volume(manifest, _preload_content=False)), True
            except ApiException as exc:
                if exc.status != 409:
                    raise
        existing = self.get_volume(name)
        if existing is None:
            raise KubernetesRequestFailed(f"PersistentVolume {name} vanished while being created")
        return existing, False

    def patch_volume(self, name: str, patch: Manifest) -> Manifest:
        with _api_errors(f"patch PersistentVolume {name}"):
            return _json(self._core.patch_persistent_volume(name, patch, _preload_content=False))

    def patch_claim_status(self, namespace: str, name: str, patch: Manifest) -> Manifest:
        with _api_errors(f"patch status of PersistentVolumeClaim {namespace}/{name}"):
            return _json(
                self._core.patch_namespaced_persistent_volume_claim_status(
                    name, namespace, patch, _preload_content=False
                )
            )

    def delete_claim(self, namespace: str, name: str) -> None:
        with _api_errors(f"delete PersistentVolumeClaim {namespace}/{name}"):
            try:
                self._core.delete_namespaced_persistent_volume_claim(name, namespace, _preload_content=False)
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def delete_volume(self, name: str) -> None:
        with _api_errors(f"delete PersistentVolume {name}"):
            try:
                self._core.delete_persistent_volume(name, _preload_content=False)
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def patch_razorvolume_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patches the status subresource (lists such as conditions are replaced whole)."""
        with _api_errors(f"patch status of RazorVolume {namespace}/{name}"):
            try:
                self._custom.patch_namespaced_custom_object_status(
                    CRD_GROUP, CRD_VERSION, namespace, CRD_PLURAL, name, {"status": status}
                )
            except ApiException as exc:
                if exc.status != 404:  # deleted meanwhile: nothing left to report on
                    raise

    def _get(self, call: Any) -> Manifest | None:
        with _api_errors("read"):
            try:
                return _json(call())
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise


def claim_users(pods: list[Manifest], claim_name: str) -> list[str]:
    """Names of the pods whose volumes name the claim and that have not finished."""
    users = []
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in _FINISHED_POD_PHASES:
            continue
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            if (volume.get("persistentVolumeClaim") or {}).get("claimName") == claim_name:
                users.append(pod["metadata"]["name"])
                break
    return sorted(users)


def _json(response: Any) -> Manifest:
    loaded: Manifest = json.loads(response.data)
    return loaded


@contextmanager
def _api_errors(what: str) -> Iterator[None]:
    try:
        yield
    except ApiException as exc:
        raise KubernetesRequestFailed(f"{what}: {exc.status} {exc.reason}") from None
