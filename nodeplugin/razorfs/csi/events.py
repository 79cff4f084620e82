"""Kubernetes events from the node plugin: what happened to a mount, told on the workload pods that
use it and on its RazorVolume (`kubectl describe` shows them). Best effort: an event that cannot be
written is logged, never an error of the operation it reports."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

log = logging.getLogger(__name__)

COMPONENT = "razorfs-node"
_API_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str = ""

    @classmethod
    def pod(cls, namespace: str, name: str, uid: str = "") -> ObjectRef:
        return cls("v1", "Pod", namespace, name, uid)

    @classmethod
    def razor_volume(cls, namespaced_name: str) -> ObjectRef | None:
        """The RazorVolume named "NAMESPACE/NAME" (the volume context's), or None."""
        namespace, _, name = namespaced_name.partition("/")
        return cls("razorfs.io/v1alpha1", "RazorVolume", namespace, name) if namespace and name else None


class EventRecorder(Protocol):
    async def emit(self, about: ObjectRef, reason: str, message: str, warning: bool = False) -> None: ...


class NoEvents:
    """Outside Kubernetes (local daemons): nobody to tell."""

    async def emit(self, about: ObjectRef, reason: str, message: str, warning: bool = False) -> None:
        return None


class KubernetesEvents:
    def __init__(self, api: Any, node_name: str) -> None:
        self.api = api  # kubernetes.client.CoreV1Api
        self.node_name = node_name

    async def emit(self, about: ObjectRef, reason: str, message: str, warning: bool = False) -> None:
        now = datetime.now(UTC)
        involved: dict[str, str] = {
            "apiVersion": about.api_version,
            "kind": about.kind,
            "namespace": about.namespace,
            "name": about.name,
        }
        if about.uid:
            involved["uid"] = about.uid
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{about.name}.", "namespace": about.namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT, "host": self.node_name},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.node_name,
            "firstTimestamp": now.isoformat(),
            "lastTimestamp": now.isoformat(),
            "count": 1,
        }
        try:
            await asyncio.to_thread(
                self.api.create_namespaced_event, about.namespace, body, _request_timeout=_API_TIMEOUT_S
            )
        except Exception as exc:  # events are news, not state: losing one must not fail anything
            log.warning("could not record event %s on %s %s/%s: %s", reason, about.kind, about.namespace,
                        about.name, type(exc).__name__)
