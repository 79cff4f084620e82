"""The local node's network: a bridge the run creates, a CNI configuration that puts pods on it
with no route out, the host route to the Service range, kube-proxy's iptables rules, and
kube-router's NetworkPolicy firewall (iptables chains and ipsets).

Pods reach the node (API server, S3 server) at the bridge address and ClusterIPs through
kube-proxy's DNAT on the host; nothing is forwarded, `ip_forward` is never touched, and no pod
gets a nameserver. Pod-to-pod packets are switched by the bridge; iptables (and so the
NetworkPolicy firewall) sees them only with `net.bridge.bridge-nf-call-iptables=1`, which
`create_network` sets (host_state records and restores it).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

BRIDGE = "rk8s0"
NODE_IP = "10.88.0.1"
POD_SUBNET = "10.88.0.0/24"
SERVICE_RANGE = "10.96.0.0/24"
SERVICE_IP = "10.96.0.1"  # the `kubernetes` Service
LEGACY_IPTABLES = ["iptables", "iptables-save", "iptables-restore"]
BRIDGE_NF_CALL_IPTABLES = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
# kube-router's NetworkPolicy ipsets (KUBE-SRC-*, KUBE-DST-*) and the TMP-* set it swaps them
# through; its iptables chains (KUBE-ROUTER-*, KUBE-NWPLCY-*, KUBE-POD-FW-*) are KUBE-* chains.
KUBE_ROUTER_IPSET_PREFIXES = ("KUBE-SRC-", "KUBE-DST-", "TMP-")


@dataclass(frozen=True)
class NodeNetwork:
    cni_conf_dir: Path
    cni_data_dir: Path
    legacy_bin_dir: Path

    def path_env(self) -> str:
        """PATH with the legacy iptables tools first (kube-proxy; `nft` is absent here)."""
        return f"{self.legacy_bin_dir}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def bridge_exists() -> bool:
    return _ip("link", "show", BRIDGE, check=False).returncode == 0


def create_network(root: Path) -> NodeNetwork:
    if bridge_exists():
        raise RuntimeError(f"the bridge {BRIDGE} already exists: another local cluster runs (make dev-down)")
    _ip("link", "add", BRIDGE, "type", "bridge")
    _ip("addr", "add", f"{NODE_IP}/24", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")
    _ip("route", "add", SERVICE_RANGE, "dev", BRIDGE, "src", NODE_IP)
    # Bridged pod-to-pod traffic through iptables' FORWARD chain, where kube-router filters it.
    BRIDGE_NF_CALL_IPTABLES.write_text("1")
    network = NodeNetwork(root / "cni" / "net.d", root / "cni" / "ipam", root / "legacy-iptables")
    network.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    conflist = {
        "cniVersion": "0.4.0",
        "name": "razorfs-local",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(network.cni_data_dir),
                    "ranges": [[{"subnet": POD_SUBNET, "rangeStart": "10.88.0.10", "gateway": NODE_IP}]],
                    "routes": [{"dst": SERVICE_RANGE, "gw": NODE_IP}],
                },
            }
        ],
    }
    (network.cni_conf_dir / "10-razorfs-local.conflist").write_text(json.dumps(conflist, indent=2))
    network.legacy_bin_dir.mkdir(exist_ok=True)
    for name in LEGACY_IPTABLES:
        link = network.legacy_bin_dir / name
        if not link.exists():
            link.symlink_to(f"/usr/sbin/{name.replace('iptables', 'iptables-legacy', 1)}")
    return network


def remove_kube_rules(network: NodeNetwork) -> None:
    """Removes every KUBE-* chain and the jumps into them, from both iptables back ends."""
    for save, iptables in (("iptables-legacy-save", "iptables-legacy"), ("iptables-nft-save", "iptables-nft")):
        dump = subprocess.run([save], capture_output=True, text=True, check=False).stdout
        table = ""
        jumps, chains = [], []
        for line in dump.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":KUBE-"):
                chains.append((table, line[1:].split()[0]))
            elif line.startswith("-A ") and "KUBE-" in line and not line.split()[1].startswith("KUBE-"):
                jumps.append((table, line[3:]))
        for table, rule in jumps:
            subprocess.run([iptables, "-t", table, "-D", *shlex.split(rule)], capture_output=True, check=False)
        for table, chain in chains:
            subprocess.run([iptables, "-t", table, "-F", chain], capture_output=True, check=False)
        for table, chain in chains:
            subprocess.run([iptables, "-t", table, "-X", chain], capture_output=True, check=False)


def _ipsets() -> list[str]:
    result = subprocess.run(["ipset", "list", "-n"], capture_output=True, text=True, check=False)
    return result.stdout.split()


def kube_router_ipsets() -> list[str]:
    return [name for name in _ipsets() if name.startswith(KUBE_ROUTER_IPSET_PREFIXES)]


def remove_kube_router_ipsets() -> None:
    """Destroys kube-router's ipsets; run after `remove_kube_rules` (a set in use by a rule stays)."""
    for name in kube_router_ipsets():
        subprocess.run(["ipset", "destroy", name], capture_output=True, check=False)


def kube_rules_left() -> list[str]:
    found = []
    for save in ("iptables-legacy-save", "iptables-nft-save"):
        dump = subprocess.run([save], capture_output=True, text=True, check=False).stdout
        found += [f"{save}: {line}" for line in dump.splitlines() if "KUBE-" in line]
    found += [f"ipset {name}" for name in kube_router_ipsets()]
    return found


def delete_network() -> None:
    if bridge_exists():
        _ip("route", "del", SERVICE_RANGE, "dev", BRIDGE, check=False)
        _ip("link", "set", BRIDGE, "down", check=False)
        _ip("link", "del", BRIDGE, check=False)


def veths_on_bridge() -> list[str]:
    out = _ip("-o", "link", "show", "master", BRIDGE, check=False).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line.strip()]
