"""A real control plane on loopback: etcd and kube-apiserver built by `make test-bins`, and on demand
the real kube-controller-manager running only the controllers a test needs (e.g. pvc-protection).

No kubelet or scheduler run here (the e2e tier has the whole node): tests create pods' effects.
Authentication is a static admin token in group system:masters, plus any extra tokens a test
registers (for RBAC tests) before start. On request the apiserver keeps an audit log (metadata
only) of chosen users' requests, e.g. to see which permissions a component really uses.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .processes import ManagedProcess, RealPartMissing, free_port, wait_until

BIN_CACHE = Path(os.environ.get("RAZORFS_BIN_CACHE", Path.home() / ".cache" / "razorfs" / "bin"))
ADMIN_TOKEN = "razorfs-admin-token-for-tests"


def test_binary(name: str) -> Path:
    path = BIN_CACHE / name
    if not path.exists():
        raise RealPartMissing(
            f"{name} not found in {BIN_CACHE}: run `make test-bins` to build it from the Go module proxy"
        )
    return path


@dataclass
class ControlPlane:
    url: str
    kubeconfig: Path
    workdir: Path
    etcd: ManagedProcess
    apiserver: ManagedProcess
    tokens: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    controllers: list[ManagedProcess] = field(default_factory=list)
    audit_log: Path | None = None

    def audit_events(self) -> list[dict[str, Any]]:
        """The audit events logged so far (start_control_plane's `audit_users` only), oldest first."""
        if self.audit_log is None:
            raise ValueError("this control plane keeps no audit log: start it with audit_users")
        if not self.audit_log.exists():
            return []
        # The apiserver may be writing a line right now: only lines it has ended are whole.
        lines = self.audit_log.read_text().split("\n")[:-1]
        return [json.loads(line) for line in lines if line.strip()]

    def kubeconfig_for(self, user: str) -> Path:
        """A kubeconfig that authenticates as one of the extra token users."""
        for token, (name, _groups) in self.tokens.items():
            if name == user:
                path = self.workdir / f"kubeconfig-{user}"
                path.write_text(yaml.safe_dump(_kubeconfig(self.url, token, user)))
                return path
        raise KeyError(user)

    def start_controller_manager(self, controllers: list[str]) -> ManagedProcess:
        """The real kube-controller-manager with only `controllers` on, as the admin; stopped with
        the plane. No serving port: several sessions' planes may run at once."""
        manager = ManagedProcess(
            "kube-controller-manager",
            [
                str(test_binary("kube-controller-manager")), f"--kubeconfig={self.kubeconfig}",
                "--secure-port=0", "--leader-elect=false", f"--controllers={','.join(controllers)}", "--v=1",
            ],
            self.workdir / "kube-controller-manager.log",
        )
        self.controllers.append(manager)
        return manager

    def stop(self) -> None:
        for manager in self.controllers:
            manager.stop()
        self.apiserver.stop()
        self.etcd.stop()


def _kubeconfig(url: str, token: str, user: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "razorfs-test", "cluster": {"server": url, "insecure-skip-tls-verify": True}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "razorfs-test", "context": {"cluster": "razorfs-test", "user": user}}],
        "current-context": "razorfs-test",
    }


def _service_account_key(workdir: Path) -> Path:
    key = workdir / "sa.key"
    if not key.exists():
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    return key


def _healthy(url: str) -> bool:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    req = urllib.request.Request(url + "/readyz", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    with urllib.request.urlopen(req, timeout=2, context=ctx) as resp:
        return bool(resp.status == 200)


def _audit_policy(users: Sequence[str]) -> dict[str, object]:
    """Who did what to which resource, and the authorizer's decision: no bodies, no other users."""
    return {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [{"level": "Metadata", "users": list(users)}, {"level": "None"}],
    }


def start_control_plane(
    workdir: Path,
    extra_tokens: dict[str, tuple[str, list[str]]] | None = None,
    audit_users: Sequence[str] = (),
) -> ControlPlane:
    """`audit_users`: log these users' requests (metadata level, synchronously) to
    <workdir>/audit.log, read back with ControlPlane.audit_events(); none by default."""
    etcd_bin = test_binary("etcd")
    apiserver_bin = test_binary("kube-apiserver")
    workdir.mkdir(parents=True, exist_ok=True)
    tokens = {ADMIN_TOKEN: ("razorfs-admin", ["system:masters"]), **(extra_tokens or {})}
    token_file = workdir / "tokens.csv"
    token_file.write_text(
        "".join(f'{token},{user},{user},"{",".join(groups)}"\n' for token, (user, groups) in tokens.items())
    )
    etcd_client, etcd_peer = free_port(), free_port()
    etcd = ManagedProcess(
        "etcd",
        [
            str(etcd_bin),
            f"--data-dir={workdir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
            f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
            f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
        workdir / "etcd.log",
    )
    key = _service_account_key(workdir)
    audit_log = None
    audit_flags = []
    if audit_users:
        audit_log = workdir / "audit.log"
        policy = workdir / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(_audit_policy(audit_users)))
        # The log backend's default mode is blocking: each request writes its own events, unbuffered.
        audit_flags = [f"--audit-policy-file={policy}", f"--audit-log-path={audit_log}"]
    port = free_port()
    apiserver = ManagedProcess(
        "kube-apiserver",
        [
            str(apiserver_bin),
            f"--etcd-servers=http://127.0.0.1:{etcd_client}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={workdir / 'certs'}",
            f"--token-auth-file={token_file}",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.96.0.0/24",
            f"--service-account-key-file={key}",
            f"--service-account-signing-key-file={key}",
            "--service-account-issuer=https://razorfs.test",
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            "--v=1",
            *audit_flags,
        ],
        workdir / "kube-apiserver.log",
    )
    url = f"https://127.0.0.1:{port}"
    kubeconfig = workdir / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(_kubeconfig(url, ADMIN_TOKEN, "razorfs-admin")))
    plane = ControlPlane(url, kubeconfig, workdir, etcd, apiserver, tokens, audit_log=audit_log)
    try:
        wait_until(
            lambda: etcd.check_alive() and apiserver.check_alive() and _healthy(url), 120, "kube-apiserver", 0.5
        )
    except Exception:
        plane.stop()
        raise
    return plane
