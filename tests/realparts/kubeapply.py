"""Applying rendered manifests to a real kube-apiserver with server-side apply, the way
`kubectl apply --server-side` does: any kind (custom resources included), optionally as a dry run.

Used by the chart tests (dry run of every rendered object), dev-up and the e2e fixtures.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

FIELD_MANAGER = "razorfs-tests"


def load_manifests(text: str) -> list[dict[str, Any]]:
    """Every non-empty document of a multi-document YAML stream."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def load_manifest_file(path: Path) -> list[dict[str, Any]]:
    return load_manifests(path.read_text())


class Applier:
    """Server-side applies objects through the dynamic client; discovery is refreshed on a miss so
    kinds whose CRD was applied a moment ago are found."""

    def __init__(self, api_client: Any, field_manager: str = FIELD_MANAGER):
        from kubernetes.dynamic import DynamicClient

        self._api_client = api_client
        self._dynamic: Any = DynamicClient(api_client)  # type: ignore[no-untyped-call]
        self.field_manager = field_manager

    def resource_for(self, api_version: str, kind: str) -> Any:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            return self._dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            self._dynamic.resources.invalidate_cache()
            return self._dynamic.resources.get(api_version=api_version, kind=kind)

    def apply(self, obj: dict[str, Any], namespace: str | None = None, dry_run: bool = False) -> Any:
        resource = self.resource_for(obj["apiVersion"], obj["kind"])
        kwargs: dict[str, Any] = {"field_manager": self.field_manager, "force_conflicts": True}
        if dry_run:
            kwargs["dry_run"] = "All"
        ns = None
        if resource.namespaced:
            ns = obj.get("metadata", {}).get("namespace") or namespace
            if ns is None:
                raise ValueError(f"{obj['kind']} {obj['metadata']['name']} needs a namespace")
        return self._dynamic.server_side_apply(resource, body=obj, namespace=ns, **kwargs)

    def apply_all(self, objs: Iterable[dict[str, Any]], namespace: str | None = None, dry_run: bool = False) -> None:
        for obj in objs:
            self.apply(obj, namespace=namespace, dry_run=dry_run)

    def delete(self, obj: dict[str, Any], namespace: str | None = None) -> None:
        from kubernetes.dynamic.exceptions import NotFoundError

        resource = self.resource_for(obj["apiVersion"], obj["kind"])
        ns = (obj.get("metadata", {}).get("namespace") or namespace) if resource.namespaced else None
        with contextlib.suppress(NotFoundError):  # already gone is what we wanted
            self._dynamic.delete(resource, name=obj["metadata"]["name"], namespace=ns)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        resource = self.resource_for(api_version, kind)
        return self._dynamic.get(resource, name=name, namespace=namespace if resource.namespaced else None)
