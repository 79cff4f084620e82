"""The operator with credentials in play and failing (a wrong secret; the real secret against a
missing bucket and an unreachable endpoint): neither secret appears in the RazorVolume's status,
in the namespace's events, or in the operator's log."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.operator.conftest import (
    OperatorProcess,
    condition,
    create_secret,
    delete_razorvolumes,
    eventually,
    razorvolume,
    s3_spec,
    start_operator,
)
from tests.realparts.kubeapi import ControlPlane
from tests.realparts.processes import free_port
from tests.realparts.s3server import TEST_SECRET_KEY, S3Server
from tests.reliability.conftest import GROUP, PLURAL, VERSION

pytestmark = [pytest.mark.kube, pytest.mark.s3]


@pytest.fixture
def operator(
    kube_apiserver: ControlPlane, razorvolume_api: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    process = start_operator(kube_apiserver.kubeconfig, tmp_path_factory.mktemp("operator"))
    try:
        yield process
    finally:
        process.kill(signal.SIGTERM)


def test_failing_credentials_never_reach_status_events_or_the_operator_log(
    operator: OperatorProcess,
    razorvolume_api: Any,
    kube_api_client: Any,
    kube_namespace: str,
    s3_server: S3Server,
    bucket: str,
) -> None:
    from kubernetes import client

    core = client.CoreV1Api(kube_api_client)
    wrong = f"wrong-secret-{uuid.uuid4().hex}"
    create_secret(core, kube_namespace, "wrong-creds", s3_server.access_key, wrong)
    create_secret(core, kube_namespace, "real-creds", s3_server.access_key, TEST_SECRET_KEY)
    volumes = {
        "wrong-secret": s3_spec(s3_server.endpoint_url, bucket, "wrong-creds", prefix="a"),
        "missing-bucket": s3_spec(s3_server.endpoint_url, "no-such-bucket-rz", "real-creds", prefix="b"),
        "unreachable": s3_spec(f"http://127.0.0.1:{free_port()}", bucket, "real-creds", prefix="c"),
    }
    for name, spec in volumes.items():
        razorvolume_api.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, razorvolume(name, spec))

    def all_failed() -> list[dict[str, Any]] | None:
        objects = [
            razorvolume_api.get_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, name)
            for name in volumes
        ]
        ready = [condition(obj, "Ready") or {} for obj in objects]
        return objects if all(c.get("status") == "False" and c.get("message") for c in ready) else None

    try:
        objects = eventually(all_failed, 60, "Ready=False with a message on all three volumes")
        events = core.list_namespaced_event(kube_namespace).items
        texts = {
            "status": json.dumps([obj.get("status") for obj in objects]),
            "events": json.dumps([[e.reason, e.message] for e in events]),
            "operator log": operator.log(),
        }
        for where, text in texts.items():
            assert wrong not in text, f"the wrong secret leaked into the {where}"
            assert TEST_SECRET_KEY not in text, f"the S3 secret leaked into the {where}"
        assert events, "the failures produced no events: nothing was checked there"
    finally:
        delete_razorvolumes(razorvolume_api, core, kube_namespace)
