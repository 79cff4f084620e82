"""The helm binary from the test-bin cache, run on the chart in charts/razorfs."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.realparts.kubeapi import test_binary
from tests.realparts.kubeapply import load_manifests

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "razorfs"
# helm built from source without release ldflags assumes Kubernetes v1.20 when no cluster is asked;
# say which version the chart targets (the apiserver the tests run).
KUBE_VERSION = "1.35.0"


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(test_binary("helm")), *args], capture_output=True, text=True, timeout=120)


def render(
    release: str = "razorfs",
    namespace: str = "razorfs",
    values_files: tuple[Path, ...] = (),
    sets: dict[str, str] | None = None,
    include_crds: bool = True,
) -> list[dict[str, Any]]:
    args = ["template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION]
    if include_crds:
        args.append("--include-crds")
    for path in values_files:
        args += ["--values", str(path)]
    for key, value in (sets or {}).items():
        args += ["--set", f"{key}={value}"]
    result = helm(*args)
    if result.returncode != 0:
        raise AssertionError(f"helm template failed: {result.stderr}")
    return load_manifests(result.stdout)
