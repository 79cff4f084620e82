"""What the node (the kubelet, containerd, the network setup) changes on the host outside the
cluster's root, recorded before start and put back at teardown: four sysctls, folders they create
in fixed places, and the `kubepods` cgroups in every hierarchy.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

# The kubelet sets the first three (vm.overcommit_memory=1, kernel.panic=10, kernel.panic_on_oops=1);
# network.create_network sets net.bridge.bridge-nf-call-iptables=1 for the NetworkPolicy firewall.
SYSCTLS = ["vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops", "net/bridge/bridge-nf-call-iptables"]
# Fixed paths the kubelet, containerd and CNI write whatever their configured roots.
FIXED_PATHS = ["/var/log/containers", "/var/log/pods", "/var/lib/kubelet", "/run/containerd", "/run/netns",
               "/var/lib/cni", "/etc/cni", "/var/run/netns"]
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_NAME = "kubepods"


@dataclass
class HostState:
    sysctls: dict[str, str] = field(default_factory=dict)
    absent_paths: list[str] = field(default_factory=list)

    @classmethod
    def record(cls) -> HostState:
        return cls(
            # A sysctl missing here (br_netfilter not loaded) is not recorded; the node refuses to start.
            sysctls={name: Path("/proc/sys", name).read_text().strip() for name in SYSCTLS
                     if Path("/proc/sys", name).exists()},
            absent_paths=[p for p in FIXED_PATHS if not os.path.lexists(p)],
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> HostState | None:
        return cls(**json.loads(path.read_text())) if path.exists() else None

    def differences(self) -> list[str]:
        """What is still not as recorded (empty once restored)."""
        found = [f"sysctl {n}={Path('/proc/sys', n).read_text().strip()} (was {v})"
                 for n, v in self.sysctls.items() if Path("/proc/sys", n).read_text().strip() != v]
        found += [f"{p} exists" for p in self.absent_paths if os.path.lexists(p)]
        found += [f"cgroup {c}" for c in kubepods_cgroups()]
        return found

    def restore(self) -> None:
        for name, value in self.sysctls.items():
            with contextlib.suppress(OSError):
                Path("/proc/sys", name).write_text(value)
        for path in self.absent_paths:
            if os.path.ismount(path):
                continue  # never remove through a mount point
            shutil.rmtree(path, ignore_errors=True)
        remove_kubepods_cgroups()


def kubepods_cgroups() -> list[Path]:
    found = []
    for hierarchy in CGROUP_ROOT.iterdir():
        candidate = hierarchy / CGROUP_NAME
        if candidate.is_dir():
            found.append(candidate)
    return found


def remove_kubepods_cgroups() -> None:
    """rmdir bottom-up; a cgroup that still holds a process stays (and shows in differences())."""
    for top in kubepods_cgroups():
        for folder in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()
