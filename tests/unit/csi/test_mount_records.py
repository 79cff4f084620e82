"""A mount's record and directory: a stage's from the CSI request, another fsGroup's from the
staged volume's record, both laid out the same way under the cache root."""

from __future__ import annotations

from pathlib import Path

from razorfs.csi.mount_records import (
    StageRequest,
    complete_daemon_flags,
    group_record,
    group_staging_path,
    make_mount_dir,
    stage_record,
)
from razorfs.csi.mount_settings import Credentials, MountSettings
from razorfs.csi.state_store import VolumeRecord, volume_key

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
STAGING = Path("/kubelet/plugins/kubernetes.io/csi/razorfs.csi.io/abc/globalmount")


def request(ca_bundle: str = "") -> StageRequest:
    return StageRequest(
        volume_id="razorfs-uid",
        staging_path=STAGING,
        settings=MountSettings.from_context({"endpoint": "https://s3.example", "bucket": "data"}),
        credentials=Credentials("AK", "SK", ca_bundle=ca_bundle),
        read_only=False,
        mount_group=None,
        capability="cap",
        razor_volume="ns/vol",
        mount_pod='{"resources": {}}',
    )


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_a_mount_dir_holds_the_cache_and_a_private_ca_bundle(tmp_path: Path) -> None:
    mount_dir = make_mount_dir(tmp_path, "razorfs-uid", PEM)
    own = tmp_path / volume_key("razorfs-uid")
    assert mount_dir.cache_dir == own / "cache" and mount_dir.cache_dir.is_dir()
    assert mount_dir.ca_bundle == own / "ca-bundle.pem"
    assert mount_dir.ca_bundle.read_text() == PEM
    assert mount_dir.ca_bundle.stat().st_mode & 0o077 == 0
    assert make_mount_dir(tmp_path, "other", "").ca_bundle is None


def test_a_stage_record_mounts_at_the_staging_path_with_its_own_cache(tmp_path: Path) -> None:
    mount_dir = make_mount_dir(tmp_path, "razorfs-uid", PEM)
    record = stage_record(request(PEM), mount_dir)
    assert record.volume_id == "razorfs-uid" and record.parent == ""
    assert record.argv[:3] == ["mount", "s3://data", str(STAGING)]
    assert flag(record.argv, "--cache-dir") == record.cache_dir == str(mount_dir.cache_dir)
    assert flag(record.argv, "--ca-bundle") == str(mount_dir.ca_bundle)
    assert (record.capability, record.razor_volume, record.mount_pod) == ("cap", "ns/vol", '{"resources": {}}')


def test_an_fsgroup_record_is_the_stage_with_its_own_mount_point_cache_bundle_group_and_name(tmp_path: Path) -> None:
    parent = stage_record(request(PEM), make_mount_dir(tmp_path, "razorfs-uid", PEM))
    staging = group_staging_path(STAGING, 2000)
    mount_dir = make_mount_dir(tmp_path, "razorfs-uid#fsgroup=2000", PEM)
    record = group_record(parent, 2000, staging, mount_dir)
    assert staging == STAGING.parent / "razorfs-fsgroup-2000"
    assert record.volume_id == "razorfs-uid#fsgroup=2000" and record.parent == "razorfs-uid"
    assert record.argv[:3] == ["mount", "s3://data", str(staging)]
    assert flag(record.argv, "--cache-dir") == record.cache_dir == str(mount_dir.cache_dir)
    assert flag(record.argv, "--ca-bundle") == str(mount_dir.ca_bundle) != flag(parent.argv, "--ca-bundle")
    assert flag(record.argv, "--gid") == "2000" and record.mount_group == 2000
    assert flag(record.argv, "--volume-name") == "razorfs-uid#fsgroup=2000"
    assert (record.capability, record.razor_volume, record.mount_pod) == (
        parent.capability,
        parent.razor_volume,
        parent.mount_pod,
    )
    assert parent.argv[2] == str(STAGING)  # the parent's arguments are left alone


def test_a_record_from_an_older_plugin_gets_explicit_keys_and_its_volume_name() -> None:
    record = VolumeRecord("vol-1", "/stage", "/cache", ["mount", "s3://data", "/stage"])
    complete_daemon_flags(record)
    assert flag(record.argv, "--credential-source") == "explicit"
    assert flag(record.argv, "--volume-name") == "vol-1"
