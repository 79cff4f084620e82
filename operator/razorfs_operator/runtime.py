"""What every handler needs, built once at operator startup and kept in kopf's memo: settings,
the cluster client, the bounded worker pool for blocking calls, the NodeAdmin client, one lock per
volume, and the listings shared by the resyncs of one round."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .cluster import Cluster, NodePluginPod
from .config import OperatorConfig
from .node_admin import NodeAdminClient
from .recent_listings import RecentListings
from .volume_objects import Manifest

T = TypeVar("T")


@dataclass
class Runtime:
    config: OperatorConfig
    cluster: Cluster
    executor: ThreadPoolExecutor
    node_admin: NodeAdminClient
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    # Resync runs hold at most half the worker threads, so a burst of new or changed volumes is
    # never queued behind the periodic refresh of the volumes that are fine already.
    resync_slots: asyncio.Semaphore = field(init=False)
    recent_node_pods: RecentListings[list[NodePluginPod]] = field(default_factory=RecentListings)
    recent_namespace_pods: RecentListings[list[Manifest]] = field(default_factory=RecentListings)
    # (volume handle, node) -> digest of the Secret data that node's daemons sign with, as far as
    # this operator process knows (a restarted operator hands every node the keys once more).
    credentials_on_nodes: dict[tuple[str, str], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.resync_slots = asyncio.Semaphore(max(1, self.config.worker_threads // 2))

    async def blocking(self, call: Callable[..., T], *args: Any) -> T:
        """Runs a blocking call (boto3, the Kubernetes client) on the bounded worker pool."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, call, *args)

    async def node_plugin_pods(self) -> list[NodePluginPod]:
        """The node plugin pods; the same answer for every volume's resync of one round."""
        config = self.config
        return await self.recent_node_pods.get(
            None, lambda: self.blocking(self.cluster.node_plugin_pods, config.node_namespace, config.node_selector)
        )

    async def recent_pods(self, namespace: str) -> list[Manifest]:
        """The pods of a namespace, shared by the resyncs of its volumes for a moment."""
        return await self.recent_namespace_pods.get(namespace, lambda: self.blocking(self.cluster.list_pods, namespace))

    def volume_lock(self, uid: str) -> asyncio.Lock:
        """Mutual exclusion of the runs for one volume (no state is kept in it)."""
        return self._locks.setdefault(uid, asyncio.Lock())

    def forget_volume(self, uid: str) -> None:
        self._locks.pop(uid, None)
