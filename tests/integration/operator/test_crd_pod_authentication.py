"""The API server enforces `spec.s3.authentication` and `spec.s3.webIdentity` (schema and CEL
rules of the chart's CRD): pod needs webIdentity and refuses a Secret, webIdentity only with pod,
both immutable, every refusal a sentence. No operator runs in this module."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import s3_spec
from .test_crd_validation import create, patch_spec, rejection

pytestmark = pytest.mark.kube

ENDPOINT = "http://s3.example.test:9000"
WEB_IDENTITY = {"roleArn": "arn:aws:iam::123456789012:role/team-a", "stsEndpoint": "https://sts.example.test"}


def pod_spec(**s3: Any) -> dict[str, Any]:
    spec = s3_spec(ENDPOINT, "my-bucket", prefix="vol")
    del spec["s3"]["secretRef"]
    spec["s3"].update({"authentication": "pod", "webIdentity": dict(WEB_IDENTITY), **s3})
    return spec


def test_a_pod_volume_needs_no_secret_and_the_default_stays_secret(custom_api: Any, kube_namespace: str) -> None:
    created = create(custom_api, kube_namespace, "pod-auth", pod_spec())
    assert created["spec"]["s3"]["authentication"] == "pod"
    assert created["spec"]["s3"]["webIdentity"] == WEB_IDENTITY
    with_audience = pod_spec(webIdentity={**WEB_IDENTITY, "audience": "minio-sts"})
    create(custom_api, kube_namespace, "pod-auth-aud", with_audience)
    plain = create(custom_api, kube_namespace, "secret-auth", s3_spec(ENDPOINT, "my-bucket"))
    assert plain["spec"]["s3"]["authentication"] == "secret"


def test_secret_authentication_still_needs_its_secret(custom_api: Any, kube_namespace: str) -> None:
    spec = s3_spec(ENDPOINT, "my-bucket")
    del spec["s3"]["secretRef"]
    message = rejection(lambda: create(custom_api, kube_namespace, "nosecret", spec))
    assert "s3.secretRef is required with authentication secret (the default)" in message


@pytest.mark.parametrize(
    ("s3", "sentence"),
    [
        ({"secretRef": {"name": "s3-creds"}}, "s3.secretRef is not allowed with authentication pod"),
        ({"webIdentity": None}, "s3.authentication pod needs s3.webIdentity with the roleArn"),
        ({"caBundleSecretRef": {"name": "ca"}}, "s3.caBundleSecretRef is not supported with authentication pod"),
        ({"webIdentity": {**WEB_IDENTITY, "roleArn": "team-a"}}, "webIdentity.roleArn must be an IAM role ARN"),
        (
            {"webIdentity": {**WEB_IDENTITY, "stsEndpoint": "sts.example.test"}},
            "webIdentity.stsEndpoint must be an http:// or https:// URL",
        ),
        ({"webIdentity": {**WEB_IDENTITY, "audience": ""}}, "webIdentity.audience must be a non-empty string"),
    ],
)
def test_a_pod_volume_with_a_secret_or_an_incomplete_web_identity_is_refused_with_a_sentence(
    custom_api: Any, kube_namespace: str, s3: dict[str, Any], sentence: str
) -> None:
    spec = pod_spec(**s3)
    spec["s3"] = {key: value for key, value in spec["s3"].items() if value is not None}
    message = rejection(lambda: create(custom_api, kube_namespace, "refused", spec))
    assert sentence in message, message


def test_web_identity_without_pod_authentication_is_refused(custom_api: Any, kube_namespace: str) -> None:
    spec = s3_spec(ENDPOINT, "my-bucket")
    spec["s3"]["webIdentity"] = dict(WEB_IDENTITY)
    message = rejection(lambda: create(custom_api, kube_namespace, "stray", spec))
    assert "s3.webIdentity is only used with authentication pod" in message


def test_reclaim_policy_delete_is_refused_for_a_pod_volume(custom_api: Any, kube_namespace: str) -> None:
    message = rejection(lambda: create(custom_api, kube_namespace, "poddel", {**pod_spec(), "reclaimPolicy": "Delete"}))
    assert "reclaimPolicy Delete is not available with s3.authentication pod" in message


def test_warmup_paths_are_refused_for_a_pod_volume(custom_api: Any, kube_namespace: str) -> None:
    spec = {**pod_spec(), "cache": {"warmup": {"paths": ["models/"]}}}
    message = rejection(lambda: create(custom_api, kube_namespace, "podwarm", spec))
    assert "cache.warmup is not available with s3.authentication pod yet" in message


def test_authentication_and_web_identity_are_immutable(custom_api: Any, kube_namespace: str) -> None:
    create(custom_api, kube_namespace, "frozen", pod_spec())
    other_role = {"s3": {"webIdentity": {**WEB_IDENTITY, "roleArn": "arn:aws:iam::123456789012:role/team-b"}}}
    message = rejection(lambda: patch_spec(custom_api, kube_namespace, "frozen", other_role))
    assert "s3 authentication and webIdentity are immutable" in message
    create(custom_api, kube_namespace, "frozen-secret", s3_spec(ENDPOINT, "my-bucket"))
    to_pod = {"s3": {"authentication": "pod", "secretRef": None, "webIdentity": WEB_IDENTITY}}
    message = rejection(lambda: patch_spec(custom_api, kube_namespace, "frozen-secret", to_pod))
    assert "immutable" in message
