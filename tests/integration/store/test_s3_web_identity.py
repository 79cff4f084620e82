"""Web identity credentials against a real STS: moto's standalone server answers
AssumeRoleWithWebIdentity and serves S3. Proxies in front of it record, at the wire, that STS is
asked unsigned and that S3 requests are signed only with the keys STS issued, never with keys of
the environment, and that the keys are fetched again (with the token file as it is then) before
they expire."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from razorfs.store.s3 import S3Store
from razorfs.store.s3_credentials import (
    MIN_SESSION_DURATION_S,
    MissingCredentials,
    StaticKeys,
    WebIdentity,
    WebIdentityCredentials,
    WebIdentityFailed,
)
from razorfs.store.s3_settings import S3Settings
from tests.integration.csi.signing_proxy import SigningProxy
from tests.realparts.s3server import S3Server

from .conftest import FAST_RETRY

pytestmark = pytest.mark.s3
ROLE_ARN = "arn:aws:iam::123456789012:role/razorfs-workload"
AMBIENT_KEY = "AKIDAMBIENTNOTTOBEUSED"
# Looks like a projected ServiceAccount token (a JWT); never to appear in a message.
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6dGVhbS1hOmFwcCJ9.c2lnbmF0dXJl"


@pytest.fixture
def moto_bucket(moto_s3_server: S3Server) -> str:
    name = f"wi-{uuid.uuid4().hex[:12]}"
    moto_s3_server.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def proxies(moto_s3_server: S3Server) -> Iterator[tuple[SigningProxy, SigningProxy]]:
    """(S3 proxy, STS proxy), both in front of the moto server."""
    s3 = SigningProxy(moto_s3_server.endpoint_url)
    sts = SigningProxy(moto_s3_server.endpoint_url)
    s3.start()
    sts.start()
    try:
        yield s3, sts
    finally:
        s3.stop()
        sts.stop()


@pytest.fixture(autouse=True)
def ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys in the environment that would work on moto: a fallback to them would go unnoticed
    but for the proxies."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AMBIENT_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ambient-secret-not-to-be-used")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/ambient-token")
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::999999999999:role/ambient")


def web_identity_store(
    token_file: Path, sts_url: str, s3_url: str, bucket: str, refresh_before_s: float | None = None
) -> S3Store:
    identity = WebIdentity(
        token_file=token_file,
        role_arn=ROLE_ARN,
        sts_endpoint_url=sts_url,
        region="us-east-1",
        session_name="team-a.app",
        duration_s=MIN_SESSION_DURATION_S,
        refresh_before_s=refresh_before_s,
    )
    settings = S3Settings(
        bucket=bucket,
        endpoint_url=s3_url,
        region="us-east-1",
        force_path_style=True,
        retry=FAST_RETRY,
        credential_source="web-identity",
        web_identity=identity,
    )
    return S3Store(settings)


def test_store_signs_only_with_the_keys_sts_issued_for_the_token(
    tmp_path: Path, moto_bucket: str, proxies: tuple[SigningProxy, SigningProxy]
) -> None:
    s3_proxy, sts_proxy = proxies
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    store = web_identity_store(token_file, sts_proxy.endpoint_url, s3_proxy.endpoint_url, moto_bucket)
    store.put_bytes("dir/file", b"hello", {})
    assert store.get_range("dir/file", 0, 5) == b"hello"

    assert sts_proxy.signers == [""], "AssumeRoleWithWebIdentity goes unsigned, once"
    signers = set(s3_proxy.signers)
    assert len(signers) == 1 and next(iter(signers)).startswith("ASIA"), signers  # STS's temporary keys
    assert AMBIENT_KEY not in signers
    assert TOKEN not in repr(store._credentials) and ROLE_ARN in repr(store._credentials)


def test_keys_are_fetched_again_before_they_expire_with_the_token_file_as_it_is_then(
    tmp_path: Path, moto_bucket: str, proxies: tuple[SigningProxy, SigningProxy]
) -> None:
    s3_proxy, sts_proxy = proxies
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    # Keys live 900 s (STS's minimum); fetch new ones once less than 897 s are left: after 3 s.
    store = web_identity_store(token_file, sts_proxy.endpoint_url, s3_proxy.endpoint_url, moto_bucket, 897.0)
    credentials = store._credentials
    assert isinstance(credentials, WebIdentityCredentials)
    store.put_bytes("a", b"1", {})
    first_key = s3_proxy.signers[-1]

    # The token file is read at each fetch: while it is missing, a refresh fails and the keys in
    # hand (still valid) keep signing.
    token_file.unlink()
    time.sleep(3.5)
    store.put_bytes("b", b"2", {})
    assert s3_proxy.signers[-1] == first_key
    assert len(sts_proxy.signers) == 1, "no STS call without a token"

    # kubelet writes the rotated token: the next request fetches new keys with it and signs with them.
    token_file.write_text(TOKEN + "-rotated")
    store.put_bytes("c", b"3", {})
    second_key = s3_proxy.signers[-1]
    assert second_key != first_key and second_key.startswith("ASIA")
    assert len(sts_proxy.signers) == 2
    assert store.get_range("a", 0, 1) == b"1" and store.get_range("c", 0, 1) == b"3"
    assert AMBIENT_KEY not in s3_proxy.signers


def test_a_missing_or_empty_token_file_fails_at_once_naming_the_file(
    tmp_path: Path, moto_bucket: str, proxies: tuple[SigningProxy, SigningProxy]
) -> None:
    s3_proxy, sts_proxy = proxies
    token_file = tmp_path / "token"
    with pytest.raises(MissingCredentials, match=r"token file .*token: No such file"):
        web_identity_store(token_file, sts_proxy.endpoint_url, s3_proxy.endpoint_url, moto_bucket)
    token_file.write_text("\n")
    with pytest.raises(MissingCredentials, match="is empty"):
        web_identity_store(token_file, sts_proxy.endpoint_url, s3_proxy.endpoint_url, moto_bucket)
    assert sts_proxy.signers == [] and s3_proxy.signers == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"role_arn": "razorfs-workload"}, "is not an IAM role ARN"),
        ({"duration_s": 60}, "session duration must be 900 to 43200 s"),
        ({"session_name": "team a"}, "session name must be"),
        ({"refresh_before_s": 900.0}, "shorter than the session duration"),
    ],
)
def test_web_identity_settings_are_checked_with_a_sentence(change: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"token_file": Path("/token"), "role_arn": ROLE_ARN, "duration_s": 900}
    with pytest.raises(ValueError, match=message):
        WebIdentity(**{**fields, **change})  # type: ignore[arg-type]


def test_settings_refuse_web_identity_mixed_with_static_keys(tmp_path: Path) -> None:
    identity = WebIdentity(token_file=tmp_path / "token", role_arn=ROLE_ARN)
    keys = StaticKeys("AKIDSTATIC", "static-secret")
    with pytest.raises(ValueError, match="needs web_identity"):
        S3Settings(bucket="b", credential_source="web-identity")
    with pytest.raises(ValueError, match="no static keys"):
        S3Settings(bucket="b", credential_source="web-identity", web_identity=identity, credentials=keys)


def test_an_sts_that_cannot_be_reached_fails_at_once_naming_endpoint_and_role(tmp_path: Path, moto_bucket: str) -> None:
    from tests.realparts.processes import free_port

    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(WebIdentityFailed) as caught:
        web_identity_store(token_file, closed, closed, moto_bucket)
    assert str(caught.value) == f"STS {closed} for role {ROLE_ARN} could not be asked: EndpointConnectionError"
