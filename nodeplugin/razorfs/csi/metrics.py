"""Prometheus metrics of the node plugin, read from the supervisor at scrape time: staged volumes
by state, published targets and daemon restarts per volume."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from razorfs.csi.supervisor import Supervisor, VolumeState


class SupervisorCollector(Collector):
    def __init__(self, supervisor: Supervisor):
        self.supervisor = supervisor

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        volumes = list(self.supervisor.volumes.values())
        by_state = GaugeMetricFamily("razorfs_node_volumes", "Staged volumes on this node by state", labels=["state"])
        for state in VolumeState:
            by_state.add_metric([state.value], sum(1 for v in volumes if v.state is state))
        yield by_state
        targets = GaugeMetricFamily("razorfs_node_published_targets", "Bind-mounted pod target paths")
        targets.add_metric([], sum(len(v.record.targets) for v in volumes))
        yield targets
        restarts = CounterMetricFamily(
            "razorfs_node_daemon_restarts", "Mount daemon restarts by the supervisor", labels=["volume_id"]
        )
        for volume in volumes:
            restarts.add_metric([volume.record.volume_id], volume.record.restarts)
        yield restarts
        ready = GaugeMetricFamily("razorfs_node_ready", "1 once every recorded volume was re-adopted")
        ready.add_metric([], 1.0 if self.supervisor.ready else 0.0)
        yield ready


def serve_metrics(port: int, supervisor: Supervisor | None) -> None:
    if supervisor is not None:
        REGISTRY.register(SupervisorCollector(supervisor))
    start_http_server(port)
