"""Prometheus metrics of the node plugin, read at scrape time: its own (staged volumes by state,
published targets, daemon restarts and whether each daemon answered) and, aggregated, every
mounted volume's daemon metrics, asked over the daemon's control socket (`metrics` op). So one
endpoint per node serves all of the node's volumes, each series labelled by volume and node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from razorfs.csi.staged_volume import VolumeState
from razorfs.csi.supervisor import Supervisor
from razorfs.mount.control import CONTROL_SOCKET_NAME, ControlOp, ControlUnavailable, request_final
from razorfs.mount.metrics import MetricSpec

DAEMON_SCRAPE_TIMEOUT_S = 2.0

NODE_METRICS = (
    MetricSpec("razorfs_node_volumes", "gauge", "Staged volumes on this node by state", ("node", "state")),
    MetricSpec("razorfs_node_published_targets", "gauge", "Bind-mounted pod target paths", ("node",)),
    MetricSpec(
        "razorfs_node_daemon_restarts_total", "counter", "Mount daemon restarts by the supervisor", ("node", "volume")
    ),
    MetricSpec(
        "razorfs_node_daemon_up", "gauge", "1 if the volume's daemon answered this scrape, else 0", ("node", "volume")
    ),
    MetricSpec("razorfs_node_ready", "gauge", "1 once every recorded volume was re-adopted", ("node",)),
)
_HELP = {spec.name: spec.help for spec in NODE_METRICS}


class SupervisorCollector(Collector):
    def __init__(self, supervisor: Supervisor, node_id: str = ""):
        self.supervisor = supervisor
        self.node_id = node_id

    def collect(self) -> Iterator[Metric]:
        volumes = self.supervisor.volumes.all()
        node = self.node_id
        by_state = GaugeMetricFamily("razorfs_node_volumes", _HELP["razorfs_node_volumes"], labels=["node", "state"])
        for state in VolumeState:
            by_state.add_metric([node, state.value], sum(1 for v in volumes if v.state is state))
        yield by_state
        targets = GaugeMetricFamily(
            "razorfs_node_published_targets", _HELP["razorfs_node_published_targets"], labels=["node"]
        )
        targets.add_metric([node], sum(len(v.record.targets) for v in volumes))
        yield targets
        restarts = CounterMetricFamily(
            "razorfs_node_daemon_restarts", _HELP["razorfs_node_daemon_restarts_total"], labels=["node", "volume"]
        )
        for volume in volumes:
            label = volume_label(volume.record.argv, volume.record.volume_id)
            restarts.add_metric([node, label], volume.record.restarts)
        yield restarts
        ready = GaugeMetricFamily("razorfs_node_ready", _HELP["razorfs_node_ready"], labels=["node"])
        ready.add_metric([node], 1.0 if self.supervisor.ready else 0.0)
        yield ready
        up = GaugeMetricFamily("razorfs_node_daemon_up", _HELP["razorfs_node_daemon_up"], labels=["node", "volume"])
        families: dict[str, Metric] = {}
        for volume in volumes:
            if volume.record.per_service_account:
                continue  # no daemon of its own (authentication pod): its ServiceAccount mounts report
            text = _daemon_metrics(volume.cache_dir) if volume.state is VolumeState.MOUNTED else None
            answered = 0.0 if text is None else 1.0
            up.add_metric([node, volume_label(volume.record.argv, volume.record.volume_id)], answered)
            for family in text_string_to_metric_families(text or ""):
                merged = families.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type, family.unit)
                )
                merged.samples.extend(family.samples)
        yield up
        yield from families.values()


def _daemon_metrics(cache_dir: Path) -> str | None:
    """The daemon's exposition text, or None when it does not answer in time."""
    try:
        socket_path = cache_dir / CONTROL_SOCKET_NAME
        reply = request_final(socket_path, {"op": ControlOp.METRICS}, timeout_s=DAEMON_SCRAPE_TIMEOUT_S)
    except (ControlUnavailable, OSError, ValueError):
        return None
    return str(reply["metrics"]) if reply.get("ok") else None


def serve_metrics(port: int, supervisor: Supervisor | None, node_id: str = "") -> None:
    if supervisor is not None:
        REGISTRY.register(SupervisorCollector(supervisor, node_id))
    start_http_server(port)


def volume_label(argv: list[str], volume_id: str) -> str:
    """The `volume` label the volume's daemon gives its own series (its --volume-name, i.e.
    NAMESPACE/NAME of its RazorVolume, else the CSI volume id), so node and daemon series join."""
    if "--volume-name" in argv[:-1]:
        return argv[argv.index("--volume-name") + 1]
    return volume_id
