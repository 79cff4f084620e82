"""Conditions keep their transition time while unchanged; the phase follows them; settings come
from the environment and the command line alike; credentials never show in repr or messages."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from razorfs_operator.conditions import find_condition, phase_of, set_condition
from razorfs_operator.config import OperatorConfig
from razorfs_operator.credentials import credentials_from_secret_data
from razorfs_operator.errors import SecretIncomplete
from razorfs_operator.main import build_parser

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def test_transition_time_moves_only_when_the_status_changes() -> None:
    first = set_condition([], "Ready", "False", "Reconciling", "", 1, T0)
    same = set_condition(first, "Ready", "False", "CredentialsRejected", "bad", 2, T0 + timedelta(seconds=30))
    ready = find_condition(same, "Ready")
    assert ready is not None and ready.last_transition_time == T0 and ready.reason == "CredentialsRejected"
    assert ready.observed_generation == 2
    flipped = set_condition(same, "Ready", "True", "VolumeReady", "", 2, T0 + timedelta(seconds=60))
    assert find_condition(flipped, "Ready").last_transition_time == T0 + timedelta(seconds=60)  # type: ignore[union-attr]


def test_conditions_keep_a_stable_order() -> None:
    conditions = set_condition([], "InUse", "False", "NoPods", "", 1, T0)
    conditions = set_condition(conditions, "Ready", "True", "VolumeReady", "", 1, T0)
    conditions = set_condition(conditions, "S3Reachable", "True", "BucketWritable", "", 1, T0)
    assert [c.type for c in conditions] == ["Ready", "S3Reachable", "InUse"]


def test_phase_follows_readiness_permanence_and_deletion() -> None:
    assert phase_of(ready=True, permanent_failure=False, deleting=False) == "Ready"
    assert phase_of(ready=False, permanent_failure=True, deleting=False) == "Failed"
    assert phase_of(ready=False, permanent_failure=False, deleting=False) == "Pending"
    assert phase_of(ready=True, permanent_failure=False, deleting=True) == "Terminating"


def test_config_reads_typed_values_from_the_environment() -> None:
    config = OperatorConfig.from_env(
        {"RAZORFS_OPERATOR_RESYNC_INTERVAL_S": "7.5", "RAZORFS_OPERATOR_NODE_ADMIN_PORT": "9999"}
    )
    assert config.resync_interval_s == 7.5 and config.node_admin_port == 9999
    with pytest.raises(ValueError, match="RAZORFS_OPERATOR_NODE_ADMIN_PORT"):
        OperatorConfig.from_env({"RAZORFS_OPERATOR_NODE_ADMIN_PORT": "many"})


def test_command_line_flags_round_trip_through_the_environment() -> None:
    args = build_parser().parse_args(["--usage-max-objects", "500", "--node-namespace", "storage"])
    config = OperatorConfig(usage_max_objects=args.usage_max_objects, node_namespace=args.node_namespace)
    assert OperatorConfig.from_env(config.to_env()) == config


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_credentials_hide_their_values() -> None:
    credentials = credentials_from_secret_data(
        "ns/creds", {"accessKeyID": _b64("AKID"), "secretAccessKey": _b64("very-secret-value")}
    )
    assert credentials.secret_access_key == "very-secret-value"
    assert "very-secret-value" not in repr(credentials) and "AKID" not in repr(credentials)


def test_incomplete_secret_names_the_missing_keys_not_the_values() -> None:
    with pytest.raises(SecretIncomplete) as caught:
        credentials_from_secret_data("ns/creds", {"accessKeyID": _b64("AKID-visible-nowhere")})
    assert "secretAccessKey" in caught.value.message and "AKID-visible-nowhere" not in caught.value.message
