"""`authentication: pod` through the real node plugin, FUSE and moto's STS and S3: a volume staged
without a Secret is served to each ServiceAccount by a mount of its own, whose daemon exchanges
the token kubelet passed at publish (AssumeRoleWithWebIdentity, checked at a recording proxy in
front of STS) and signs S3 requests only with the keys STS issued (checked at a signing proxy in
front of S3). A republish with a fresh token replaces the token file; a publish without a token
is refused with a message saying what is missing."""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest

from razorfs.csi.mount_records import TOKEN_FILE_NAME
from razorfs_wire.csi.v1 import csi_pb2, csi_pb2_grpc
from tests.integration.csi.kubelet_calls import CALL_TIMEOUT_S, KubeletVolume, capability
from tests.integration.csi.plugin import NodePlugin
from tests.integration.csi.signing_proxy import SigningProxy
from tests.realparts.s3server import S3Server
from tests.reliability.secret_scan import register_secret

pytestmark = [pytest.mark.s3, pytest.mark.fuse]

ROLE_ARN = "arn:aws:iam::123456789012:role/team-a"
AUDIENCE = "sts.amazonaws.com"
# Projected ServiceAccount tokens are JWTs; these look like them and must never be printed.
TOKEN_APP = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6dGVhbS1hOmFwcCJ9.YXBwLXNpZ25hdHVyZQ"
TOKEN_APP_FRESH = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZWFtLWE6YXBwIiwiaWF0IjoyfQ.ZnJlc2gtc2lnbmF0dXJl"
TOKEN_BATCH = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6dGVhbS1hOmJhdGNoIn0.YmF0Y2gtc2ln"
for _token in (TOKEN_APP, TOKEN_APP_FRESH, TOKEN_BATCH):
    register_secret(_token)  # the session's scan fails if one shows up in any log or output


class StsRecorder:
    """An HTTP proxy in front of moto's STS that records the WebIdentityToken of every
    AssumeRoleWithWebIdentity it forwards."""

    def __init__(self, upstream: str) -> None:
        self.tokens: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                form = urllib.parse.parse_qs(body.decode())
                if form.get("Action") == ["AssumeRoleWithWebIdentity"]:
                    recorder.tokens.append(form.get("WebIdentityToken", [""])[0])
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                request = urllib.request.Request(upstream + self.path, data=body, headers=headers, method="POST")
                try:
                    with urllib.request.urlopen(request, timeout=30) as reply:
                        status, answer, kind = reply.status, reply.read(), reply.headers.get("Content-Type", "")
                except urllib.error.HTTPError as err:
                    status, answer, kind = err.code, err.read(), err.headers.get("Content-Type", "")
                self.send_response(status)
                self.send_header("Content-Type", kind or "text/xml")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> StsRecorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sts(moto_s3_server: S3Server) -> Iterator[StsRecorder]:
    with StsRecorder(moto_s3_server.endpoint_url) as recorder:
        yield recorder


@pytest.fixture
def s3_proxy(moto_s3_server: S3Server) -> Iterator[SigningProxy]:
    proxy = SigningProxy(moto_s3_server.endpoint_url)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def pod_volume(
    node_plugin: NodePlugin, moto_s3_server: S3Server, s3_proxy: SigningProxy, sts: StsRecorder
) -> KubeletVolume:
    bucket = f"pod-{uuid.uuid4().hex[:12]}"
    moto_s3_server.client().create_bucket(Bucket=bucket)
    volume = KubeletVolume.on_s3(
        node_plugin.kubelet_dir,
        moto_s3_server,
        bucket,
        "team-a",
        authentication="pod",
        roleArn=ROLE_ARN,
        stsEndpoint=sts.endpoint_url,
        audience=AUDIENCE,
    )
    volume.context["endpoint"] = s3_proxy.endpoint_url
    volume.secrets = {}  # the PV of a pod volume names no stage Secret
    return volume


def publish_as(
    node: csi_pb2_grpc.NodeStub, volume: KubeletVolume, pod: str, service_account: str, token: str | None
) -> Path:
    """NodePublishVolume as kubelet sends it for a pod of `team-a/<service_account>` with the
    CSIDriver's tokenRequests (no token entry at all when `token` is None)."""
    target = volume.target_for(pod)
    target.parent.mkdir(parents=True, exist_ok=True)
    context = {
        **volume.context,
        "csi.storage.k8s.io/pod.namespace": "team-a",
        "csi.storage.k8s.io/pod.name": pod,
        "csi.storage.k8s.io/pod.uid": pod,
        "csi.storage.k8s.io/serviceAccount.name": service_account,
        "csi.storage.k8s.io/ephemeral": "false",
    }
    if token is not None:
        tokens = {AUDIENCE: {"token": token, "expirationTimestamp": "2031-01-01T00:00:00Z"}}
        context["csi.storage.k8s.io/serviceAccount.tokens"] = json.dumps(tokens)
    node.NodePublishVolume(
        csi_pb2.NodePublishVolumeRequest(
            volume_id=volume.volume_id,
            staging_target_path=str(volume.staging_path),
            target_path=str(target),
            volume_capability=capability(),
            volume_context=context,
        ),
        timeout=CALL_TIMEOUT_S,
    )
    return target


def token_files(plugin: NodePlugin) -> dict[str, str]:
    return {str(path.parent): path.read_text() for path in plugin.cache_root.glob(f"*/{TOKEN_FILE_NAME}")}


def test_pods_of_two_service_accounts_get_two_daemons_signing_with_the_keys_sts_gave_for_their_tokens(
    node_plugin: NodePlugin,
    pod_volume: KubeletVolume,
    sts: StsRecorder,
    s3_proxy: SigningProxy,
    moto_s3_server: S3Server,
    fuse_available: None,
) -> None:
    with node_plugin.channel() as channel:
        node = node_plugin.node(channel)
        pod_volume.stage(node)  # no Secret, no token, no daemon yet
        assert node_plugin.daemon_pids() == [] and sts.tokens == []

        app = publish_as(node, pod_volume, "app-1", "app", TOKEN_APP)
        (app / "report.txt").write_text("written as team-a/app")
        assert (app / "report.txt").read_text() == "written as team-a/app"
        os.sync()
        assert sts.tokens == [TOKEN_APP]

        batch = publish_as(node, pod_volume, "batch-1", "batch", TOKEN_BATCH)
        assert (batch / "report.txt").read_text() == "written as team-a/app"  # close() reached S3 first
        assert sts.tokens == [TOKEN_APP, TOKEN_BATCH]
        assert len(set(node_plugin.daemon_pids())) == 2, "pods with different ServiceAccounts share no daemon"
        # A second pod of the same ServiceAccount shares its mount.
        publish_as(node, pod_volume, "app-2", "app", TOKEN_APP)
        assert len(set(node_plugin.daemon_pids())) == 2

        # Every S3 request was signed with STS's temporary keys (ASIA...), none unsigned or static.
        signers = set(s3_proxy.signers)
        assert signers and all(key.startswith("ASIA") for key in signers), signers
        body = moto_s3_server.client().get_object(Bucket=pod_volume.context["bucket"], Key="team-a/report.txt")
        assert body["Body"].read() == b"written as team-a/app"

        # Each mount's token is in its own directory, 0600, and nowhere in records or logs.
        files = token_files(node_plugin)
        assert sorted(files.values()) == sorted([TOKEN_APP, TOKEN_BATCH])
        for directory in files:
            mode = stat.S_IMODE((Path(directory) / TOKEN_FILE_NAME).stat().st_mode)
            assert mode == 0o600, oct(mode)
        for record in node_plugin.state_dir.rglob("*"):
            if record.is_file():
                text = record.read_text(errors="replace")
                assert TOKEN_APP not in text and TOKEN_BATCH not in text, record
        plugin_log = node_plugin.log_path.read_text(errors="replace")
        assert TOKEN_APP not in plugin_log and TOKEN_BATCH not in plugin_log

        for pod in ("app-1", "app-2", "batch-1"):
            pod_volume.unpublish(node, pod_volume.target_for(pod))
        assert node_plugin.daemon_pids() == [], "each ServiceAccount's mount goes with its last pod"
        pod_volume.unstage(node)
    assert token_files(node_plugin) == {}


def test_a_republish_with_a_fresh_token_replaces_the_token_file_and_answers_ok(
    node_plugin: NodePlugin, pod_volume: KubeletVolume, sts: StsRecorder, fuse_available: None
) -> None:
    with node_plugin.channel() as channel:
        node = node_plugin.node(channel)
        pod_volume.stage(node)
        target = publish_as(node, pod_volume, "app-1", "app", TOKEN_APP)
        (directory,) = token_files(node_plugin)
        token_path = Path(directory) / TOKEN_FILE_NAME
        before = token_path.stat().st_ino
        daemons = node_plugin.daemon_pids()

        # kubelet's periodic republish (requiresRepublish) of the already published target.
        assert publish_as(node, pod_volume, "app-1", "app", TOKEN_APP_FRESH) == target
        assert token_path.read_text() == TOKEN_APP_FRESH
        assert token_path.stat().st_ino != before, "replaced by a rename, never rewritten in place"
        assert stat.S_IMODE(token_path.stat().st_mode) == 0o600
        assert node_plugin.daemon_pids() == daemons, "a republish keeps the daemon"
        assert list(Path(directory).glob(f".{TOKEN_FILE_NAME}*")) == []
        (target / "still.txt").write_text("served")
        assert (target / "still.txt").read_text() == "served"

        pod_volume.unpublish(node, target)
        pod_volume.unstage(node)


def test_a_publish_without_a_token_is_refused_and_says_what_is_missing(
    node_plugin: NodePlugin, pod_volume: KubeletVolume, sts: StsRecorder, fuse_available: None
) -> None:
    with node_plugin.channel() as channel:
        node = node_plugin.node(channel)
        pod_volume.stage(node)
        with pytest.raises(grpc.RpcError) as info:
            publish_as(node, pod_volume, "app-1", "app", None)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        details = info.value.details() or ""
        assert "no ServiceAccount token" in details and "tokenRequests" in details, details
        assert node_plugin.daemon_pids() == [] and sts.tokens == []
        pod_volume.unstage(node)


def test_a_restarted_plugin_keeps_the_service_account_mount_and_a_killed_daemon_comes_back_with_its_token(
    node_plugin: NodePlugin, pod_volume: KubeletVolume, sts: StsRecorder, fuse_available: None
) -> None:
    with node_plugin.channel() as channel:
        pod_volume.stage(node_plugin.node(channel))
        target = publish_as(node_plugin.node(channel), pod_volume, "app-1", "app", TOKEN_APP)
    (target / "kept.txt").write_text("before")
    (daemon,) = node_plugin.daemon_pids()

    node_plugin.kill(signal.SIGKILL)
    node_plugin.start()  # ready once it has re-adopted the stage (no daemon) and the mount
    assert node_plugin.daemon_pids() == [daemon]
    with node_plugin.channel() as channel:
        node = node_plugin.node(channel)
        publish_as(node, pod_volume, "app-1", "app", TOKEN_APP_FRESH)  # kubelet's republish
        assert (target / "kept.txt").read_text() == "before"

        # A dead daemon is replaced; the new one asks STS with the token file as it is now.
        os.killpg(daemon, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and set(node_plugin.daemon_pids()) in (set(), {daemon}):
            time.sleep(0.1)
        while time.monotonic() < deadline:
            try:
                if (target / "kept.txt").read_text() == "before":
                    break
            except OSError:
                pass
            time.sleep(0.1)
        assert (target / "kept.txt").read_text() == "before", node_plugin.log_tail()
        assert sts.tokens[-1] == TOKEN_APP_FRESH, "the new daemon read the refreshed token"

        pod_volume.unpublish(node, target)
        pod_volume.unstage(node)
