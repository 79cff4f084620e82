"""The chart installed for real with `helm install` on the local node: a small values file that only
points the images at the local tags, the kubelet and host folders at the node's root, and the
StorageClass at the local S3 server."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..kubeapi import test_binary
from .images import LocalImages

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "razorfs"
RELEASE = "razorfs"
NAMESPACE = "razorfs-system"


@dataclass(frozen=True)
class StorageClassTarget:
    endpoint: str
    bucket: str
    region: str
    secret_name: str


def local_values(images: LocalImages, kubelet_dir: str, host_root: Path, target: StorageClassTarget,
                 project_tag: str | None = None) -> dict[str, Any]:
    repository, tag = images.project.rsplit(":", 1)
    return {
        # Never: every image is already in containerd; a pull would query the machine's DNS.
        "image": {"repository": repository, "tag": project_tag or tag, "pullPolicy": "Never"},
        "kubeletDir": kubelet_dir,
        "logLevel": "debug",
        "node": {"stateDir": str(host_root / "state"), "cacheDir": str(host_root / "cache")},
        "operator": {"statusIntervalSeconds": 5},
        "sidecars": {
            "nodeDriverRegistrar": {"image": images.sidecars["csi-node-driver-registrar"]},
            "livenessProbe": {"image": images.sidecars["livenessprobe"]},
            "provisioner": {"image": images.sidecars["csi-provisioner"]},
            "resizer": {"image": images.sidecars["csi-resizer"]},
        },
        "storageClass": {
            "create": True,
            "endpoint": target.endpoint,
            "bucket": target.bucket,
            "region": target.region,
            "prefix": "pvc",
            "secretName": target.secret_name,
        },
    }


class Helm:
    def __init__(self, kubeconfig: str, work: Path) -> None:
        self.kubeconfig = kubeconfig
        self.work = work
        work.mkdir(parents=True, exist_ok=True)

    def run(self, *args: str, timeout_s: float = 600) -> str:
        env = {"HOME": str(self.work), "HELM_CACHE_HOME": str(self.work / "cache"),
               "HELM_CONFIG_HOME": str(self.work / "config"), "HELM_DATA_HOME": str(self.work / "data"),
               "PATH": "/usr/bin:/bin"}
        result = subprocess.run([str(test_binary("helm")), f"--kubeconfig={self.kubeconfig}", *args],
                                capture_output=True, text=True, env=env, timeout=timeout_s)
        if result.returncode != 0:
            raise RuntimeError(f"helm {args[0]} failed: {result.stderr.strip()}")
        return result.stdout

    def install_or_upgrade(self, values: dict[str, Any], verb: str = "install", chart: Path = CHART) -> None:
        path = self.work / f"values-{int(time.time() * 1000)}.yaml"
        path.write_text(yaml.safe_dump(values))
        self.run(verb, RELEASE, str(chart), "--namespace", NAMESPACE, "--create-namespace", "--values", str(path),
                 "--wait", "--timeout", "5m")

    def uninstall(self) -> None:
        self.run("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout", "3m")
