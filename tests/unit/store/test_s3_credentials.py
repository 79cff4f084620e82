"""Explicit S3 credentials: the client signs with the given keys only (never the environment, an
AWS config file or instance metadata), and replaced keys are used from the next request on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from razorfs.store.s3 import S3Store
from razorfs.store.s3_credentials import MissingCredentials, StaticKeys
from razorfs.store.s3_settings import S3Settings

AMBIENT_KEY_ID = "AKIDAMBIENTNODEROLE1"


class _Sent(Exception):
    """Raised instead of sending: the request was signed, which is all we look at."""


def _signed_key_id(store: S3Store) -> str:
    seen: list[str] = []

    def capture(request: Any, **_: Any) -> None:
        seen.append(
            request.headers["Authorization"].decode()
            if isinstance(request.headers["Authorization"], bytes)
            else request.headers["Authorization"]
        )
        raise _Sent

    store._client.meta.events.register("before-send.s3", capture)
    with pytest.raises(_Sent):
        store._client.list_objects_v2(Bucket="b", MaxKeys=1)
    credential = seen[0].split("Credential=", 1)[1]
    return credential.split("/", 1)[0]


@pytest.fixture
def ambient_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials that boto3's default chain would find: environment and a profile file."""
    aws = tmp_path / ".aws"
    aws.mkdir()
    (aws / "credentials").write_text(f"[default]\naws_access_key_id={AMBIENT_KEY_ID}\naws_secret_access_key=x\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AMBIENT_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ambient-secret")
    monkeypatch.setenv("AWS_PROFILE", "default")


def _settings(keys: StaticKeys) -> S3Settings:
    return S3Settings(
        bucket="b",
        endpoint_url="http://127.0.0.1:9",
        region="us-east-1",
        force_path_style=True,
        credential_source="explicit",
        credentials=keys,
    )


def test_explicit_credentials_sign_although_the_default_chain_has_others(ambient_credentials: None) -> None:
    store = S3Store(_settings(StaticKeys("AKIDVOLUMEKEY0001", "volume-secret")))
    assert _signed_key_id(store) == "AKIDVOLUMEKEY0001"


def test_replaced_credentials_sign_the_next_request(ambient_credentials: None) -> None:
    store = S3Store(_settings(StaticKeys("AKIDVOLUMEKEY0001", "volume-secret", "token-1")))
    store.replace_credentials(StaticKeys("AKIDVOLUMEKEY0002", "volume-secret-2", "token-2"))
    assert _signed_key_id(store) == "AKIDVOLUMEKEY0002"


def test_the_default_chain_is_what_a_person_at_a_shell_gets(ambient_credentials: None) -> None:
    store = S3Store(S3Settings(bucket="b", endpoint_url="http://127.0.0.1:9", region="us-east-1"))
    assert _signed_key_id(store) == AMBIENT_KEY_ID


def test_explicit_keys_from_the_environment_name_what_is_missing_never_a_value() -> None:
    with pytest.raises(MissingCredentials) as info:
        StaticKeys.from_environment({"AWS_ACCESS_KEY_ID": "AKIDVISIBLE", "AWS_SESSION_TOKEN": "tok-secret"})
    assert "AWS_SECRET_ACCESS_KEY not set" in str(info.value)
    assert "AKIDVISIBLE" not in str(info.value) and "tok-secret" not in str(info.value)
    with pytest.raises(MissingCredentials):
        StaticKeys("", "secret")


def test_explicit_settings_without_credentials_are_refused() -> None:
    with pytest.raises(ValueError, match="explicit"):
        S3Settings(bucket="b", credential_source="explicit")
