"""`razorfs-node`: serves CSI Identity + Node (+ Controller) on a unix socket and NodeAdmin on TCP.

Stopping the plugin (SIGTERM, upgrade, crash) never stops the mount daemons: they run in their
own sessions and the next plugin process re-adopts them from the state dir."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import grpc

from razorfs import __version__
from razorfs.csi.admin import NodeAdminService
from razorfs.csi.admin_auth import DEFAULT_AUDIENCE, AdminAuth, SharedTokenAuth, TokenReviewAuth, kubernetes_reviewer
from razorfs.csi.admin_tls import make_server_identity
from razorfs.csi.controller import ControllerService
from razorfs.csi.daemon_hosts import DaemonHost, LocalDaemons, default_mount_command
from razorfs.csi.daemon_logs import DaemonLogRelay
from razorfs.csi.events import KubernetesEvents
from razorfs.csi.health_loop import HEALTH_CHECK_INTERVAL_S
from razorfs.csi.identity import IdentityService
from razorfs.csi.metrics import serve_metrics
from razorfs.csi.mount_pods import MountPods, MountPodTemplate
from razorfs.csi.mount_shutdown import UNSTAGE_FLUSH_TIMEOUT_S
from razorfs.csi.node import NodeService
from razorfs.csi.spare_daemon import SpareDaemons
from razorfs.csi.state_store import StateStore
from razorfs.csi.supervisor import Supervisor
from razorfs.log_format import LOG_FORMAT_ENV, add_log_format_argument, configure_logging
from razorfs_wire.csi.v1 import csi_pb2_grpc
from razorfs_wire.razorfs.v1 import node_admin_pb2_grpc

log = logging.getLogger("razorfs.csi")

DEFAULT_ADMIN_ADDRESS = "127.0.0.1:9810"
ADMIN_TOKEN_ENV = "RAZORFS_ADMIN_TOKEN"
MODES = ("node", "controller", "all")


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}\n")


class ConfigError(Exception):
    """A flag combination that cannot work; printed as one line."""


@dataclass(frozen=True)
class Config:
    socket_path: Path
    node_id: str
    mode: str
    state_dir: Path | None
    cache_root: Path | None
    kubelet_dir: Path
    admin_address: str | None
    admin_token: str | None
    mount_command: list[str]
    health_check_interval_s: float
    metrics_port: int = 0
    unstage_flush_timeout_s: float = UNSTAGE_FLUSH_TIMEOUT_S
    spare_daemon: bool = True
    # NodeAdmin over TLS (a key and self-signed certificate made at start, kept in memory).
    admin_tls: bool = False
    # "NAMESPACE/NAME": callers are checked with a TokenReview and only this ServiceAccount passes.
    admin_service_account: str | None = None
    admin_audience: str = DEFAULT_AUDIENCE
    kubeconfig: Path | None = None
    # The mount pod template (JSON): daemons in pods of their own. None: local daemon processes.
    mount_pods: Path | None = None

    @property
    def serves_node(self) -> bool:
        return self.mode in ("node", "all")

    @property
    def serves_controller(self) -> bool:
        return self.mode in ("controller", "all")


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="razorfs-node", description="RazorFS CSI plugin (Identity, Node, Controller).")
    parser.add_argument("--version", action="version", version=f"razorfs-node {__version__}")
    parser.add_argument("--endpoint", required=True, help="CSI socket, unix:///path/csi.sock")
    parser.add_argument("--node-id", default=os.environ.get("NODE_ID", ""), help="this node's name (env NODE_ID)")
    parser.add_argument("--state-dir", type=Path, help="records of staged volumes (node mode)")
    parser.add_argument("--cache-root", type=Path, help="parent of the volumes' cache dirs (default STATE_DIR/cache)")
    parser.add_argument(
        "--admin-address", help=f"NodeAdmin host:port (default {DEFAULT_ADMIN_ADDRESS}; 'none' disables)"
    )
    parser.add_argument(
        "--admin-token-file", type=Path, help=f"file holding the NodeAdmin token (or env {ADMIN_TOKEN_ENV})"
    )
    parser.add_argument(
        "--admin-tls",
        action="store_true",
        help="serve NodeAdmin over TLS with a key and self-signed certificate made at start (in memory only)",
    )
    parser.add_argument(
        "--admin-allowed-service-account",
        metavar="NAMESPACE/NAME",
        help="authenticate NodeAdmin callers with a TokenReview and accept only this ServiceAccount "
        "(replaces --admin-token-file)",
    )
    parser.add_argument(
        "--admin-token-audience",
        default=DEFAULT_AUDIENCE,
        help=f"the audience the caller's token must be bound to (default {DEFAULT_AUDIENCE})",
    )
    parser.add_argument(
        "--kubeconfig", type=Path, help="API server access for TokenReview (default: in-cluster ServiceAccount)"
    )
    parser.add_argument(
        "--mount-pods",
        type=Path,
        metavar="FILE",
        help="run every mount daemon in a pod of its own, described by this JSON file (the chart "
        "writes it); without it, daemons are processes of this plugin",
    )
    parser.add_argument("--mode", choices=MODES, default="node")
    parser.add_argument("--metrics-port", type=int, default=0, help="Prometheus metrics port (0: off)")
    parser.add_argument("--kubelet-dir", type=Path, default=Path("/var/lib/kubelet"))
    parser.add_argument("--mount-command", help="the razorfs CLI to run mount daemons with (default: installed one)")
    parser.add_argument(
        "--no-spare-daemon",
        action="store_true",
        help="start every mount daemon from scratch instead of keeping one pre-started process "
        "(which makes a stage about 0.3 s faster and costs ~50 MiB; never used with --mount-command)",
    )
    parser.add_argument("--health-check-interval", type=float, default=HEALTH_CHECK_INTERVAL_S, metavar="SECONDS")
    parser.add_argument(
        "--unstage-flush-timeout",
        type=float,
        default=UNSTAGE_FLUSH_TIMEOUT_S,
        metavar="SECONDS",
        help="how long unstage waits for dirty data to reach S3 before answering UNAVAILABLE",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add_log_format_argument(parser)
    return parser


def _read_token(args: argparse.Namespace) -> str | None:
    if args.admin_token_file is not None:
        try:
            token = str(args.admin_token_file.read_text()).strip()
        except OSError as exc:
            raise ConfigError(f"cannot read --admin-token-file: {exc.strerror}") from None
        if not token:
            raise ConfigError("--admin-token-file is empty")
        return token
    return os.environ.get(ADMIN_TOKEN_ENV, "").strip() or None


def config_from_args(args: argparse.Namespace) -> Config:
    endpoint: str = args.endpoint
    if not endpoint.startswith("unix://"):
        raise ConfigError(f"--endpoint must be unix:///absolute/path, got {endpoint!r}")
    socket_path = Path(endpoint.removeprefix("unix://"))
    if not socket_path.is_absolute():
        raise ConfigError(f"--endpoint path must be absolute, got {str(socket_path)!r}")
    serves_node = args.mode in ("node", "all")
    if serves_node and not args.node_id:
        raise ConfigError("--node-id is required in node mode")
    if serves_node and args.state_dir is None:
        raise ConfigError("--state-dir is required in node mode")
    if serves_node and not args.kubelet_dir.is_absolute():
        raise ConfigError("--kubelet-dir must be absolute")
    if not 0 <= args.metrics_port < 65536:
        raise ConfigError("--metrics-port must be 0..65535")
    if args.unstage_flush_timeout <= 0:
        raise ConfigError("--unstage-flush-timeout must be positive")
    if args.health_check_interval <= 0:
        raise ConfigError("--health-check-interval must be positive")
    account: str | None = args.admin_allowed_service_account
    if account is not None and (account.count("/") != 1 or not all(account.split("/"))):
        raise ConfigError(f"--admin-allowed-service-account must be NAMESPACE/NAME, got {account!r}")
    if account is not None and args.admin_token_file is not None:
        raise ConfigError("--admin-allowed-service-account and --admin-token-file exclude each other")
    token = _read_token(args) if serves_node and account is None else None
    admin_address: str | None = args.admin_address
    if admin_address in ("none", ""):
        admin_address = None
    elif admin_address is None:
        admin_address = DEFAULT_ADMIN_ADDRESS if token or account else None
    elif not token and not account:
        raise ConfigError(
            "--admin-address needs a way to authenticate callers: --admin-allowed-service-account "
            f"(TokenReview), or --admin-token-file / env {ADMIN_TOKEN_ENV}"
        )
    if admin_address is not None and not serves_node:
        admin_address = None
    mount_command = args.mount_command.split() if args.mount_command else default_mount_command()
    state_dir = args.state_dir.resolve() if args.state_dir else None
    cache_root = args.cache_root.resolve() if args.cache_root else (state_dir / "cache" if state_dir else None)
    return Config(
        socket_path=socket_path,
        node_id=args.node_id,
        mode=args.mode,
        state_dir=state_dir,
        cache_root=cache_root,
        kubelet_dir=args.kubelet_dir,
        admin_address=admin_address,
        admin_token=token,
        mount_command=mount_command,
        health_check_interval_s=args.health_check_interval,
        metrics_port=args.metrics_port,
        unstage_flush_timeout_s=args.unstage_flush_timeout,
        # A spare runs this interpreter's razorfs: only when that is the command in use.
        spare_daemon=not args.no_spare_daemon and not args.mount_command,
        admin_tls=args.admin_tls,
        admin_service_account=account,
        admin_audience=args.admin_token_audience,
        kubeconfig=args.kubeconfig,
        mount_pods=args.mount_pods,
    )


def _bind_csi_socket(server: grpc.aio.Server, socket_path: Path) -> None:
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()  # a stale socket of a previous process
    # The socket is created with mode 0600 from the start: no window in which others connect.
    previous = os.umask(0o177)
    try:
        server.add_insecure_port(f"unix://{socket_path}")
    finally:
        os.umask(previous)


# Everything the plugin and its mount daemons create on the host (state, credentials, cache
# dirs, logs, sockets) is root's only from creation; the daemons inherit this umask.
PRIVATE_UMASK = 0o077


def _admin_auth(config: Config) -> AdminAuth:
    if config.admin_service_account is not None:
        reviewer = kubernetes_reviewer(config.kubeconfig)
        return TokenReviewAuth(reviewer, config.admin_service_account, config.admin_audience)
    assert config.admin_token is not None  # config_from_args requires one or the other
    return SharedTokenAuth(config.admin_token)


def _bind_admin_port(server: grpc.aio.Server, config: Config) -> int:
    assert config.admin_address is not None
    if not config.admin_tls:
        return server.add_insecure_port(config.admin_address)
    identity = make_server_identity(config.node_id)
    credentials = grpc.ssl_server_credentials([(identity.key_pem, identity.cert_pem)])
    return server.add_secure_port(config.admin_address, credentials)


def _daemon_host(config: Config) -> DaemonHost:
    assert config.state_dir is not None and config.cache_root is not None
    if config.mount_pods is not None:
        try:
            template = MountPodTemplate.from_file(config.mount_pods, config.node_id, config.cache_root)
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"--mount-pods {config.mount_pods}: {exc}") from None
        return MountPods.in_cluster(template, config.kubeconfig)
    spares = SpareDaemons(config.cache_root, config.state_dir / "spare-daemon.log") if config.spare_daemon else None
    return LocalDaemons(config.mount_command, spares)


async def serve(config: Config) -> None:
    os.umask(PRIVATE_UMASK)
    supervisor: Supervisor | None = None
    if config.serves_node:
        assert config.state_dir is not None and config.cache_root is not None
        config.cache_root.mkdir(parents=True, exist_ok=True)
        host = _daemon_host(config)
        events = KubernetesEvents(host.api, config.node_id) if isinstance(host, MountPods) else None
        supervisor = Supervisor(
            StateStore(config.state_dir),
            config.cache_root,
            host,
            config.health_check_interval_s,
            config.unstage_flush_timeout_s,
            events,
            config.node_id,
        )
    server = grpc.aio.server()
    identity = IdentityService(config.serves_controller, lambda: supervisor is None or supervisor.ready)
    csi_pb2_grpc.add_IdentityServicer_to_server(identity, server)
    if supervisor is not None:
        csi_pb2_grpc.add_NodeServicer_to_server(NodeService(supervisor, config.node_id, config.kubelet_dir), server)
    if config.serves_controller:
        csi_pb2_grpc.add_ControllerServicer_to_server(ControllerService(), server)
    _bind_csi_socket(server, config.socket_path)
    admin_server: grpc.aio.Server | None = None
    if supervisor is not None and config.admin_address:
        admin_server = grpc.aio.server()
        admin = NodeAdminService(supervisor, config.node_id, _admin_auth(config))
        node_admin_pb2_grpc.add_NodeAdminServicer_to_server(admin, admin_server)
        if _bind_admin_port(admin_server, config) == 0:
            raise ConfigError(f"cannot listen on --admin-address {config.admin_address}")
    if config.metrics_port:
        serve_metrics(config.metrics_port, supervisor, config.node_id)
    await server.start()
    if admin_server is not None:
        await admin_server.start()
    log.info(
        "razorfs-node %s serving %s on %s (admin %s%s)",
        __version__,
        config.mode,
        config.socket_path,
        config.admin_address or "off",
        " over TLS" if config.admin_address and config.admin_tls else "",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    health: asyncio.Task[None] | None = None
    relay: asyncio.Task[None] | None = None
    try:
        if supervisor is not None:
            if isinstance(supervisor.host, LocalDaemons):  # a mount pod's daemon logs to its own stderr
                relay = asyncio.create_task(DaemonLogRelay(supervisor.daemon_logs).run(), name="daemon-log-relay")
            await supervisor.adopt_all()
            if isinstance(supervisor.host, LocalDaemons):
                supervisor.host.replenish_spare()
            health = asyncio.create_task(supervisor.run_health_checks(), name="health-checks")
        log.info("ready")
        await stop.wait()
    finally:
        log.info("stopping; mount daemons keep running")
        if supervisor is not None and isinstance(supervisor.host, LocalDaemons):
            supervisor.host.close()
        for task in (health, relay):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await server.stop(grace=5)
        if admin_server is not None:
            await admin_server.stop(grace=2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging("razorfs-node", args.log_level, args.log_format, node=args.node_id)
    # The mount daemons (and spares) inherit the plugin's environment: same format, same node.
    os.environ[LOG_FORMAT_ENV] = args.log_format
    if args.node_id:
        os.environ["NODE_ID"] = args.node_id
    # gRPC's and asyncio's debug chatter would drown ours.
    for noisy in ("grpc", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLogger().level))
    try:
        config = config_from_args(args)
        asyncio.run(serve(config))
    except ConfigError as exc:
        print(f"razorfs-node: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"razorfs-node: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
