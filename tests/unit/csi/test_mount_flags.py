"""Mount options (CSI mount_flags): the documented set works, anything else is refused by name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from razorfs.csi.errors import InvalidArgument
from razorfs.csi.mount_flags import MOUNT_FLAGS, parse_mount_flags
from razorfs.csi.mount_settings import MountSettings
from razorfs.csi.validation import capability_unsupported_reason, check_capability
from razorfs_wire.csi.v1 import csi_pb2

README = Path(__file__).resolve().parents[3] / "README.md"
CONTEXT = {"endpoint": "http://127.0.0.1:8333", "bucket": "data", "cacheMode": "writeback", "uid": "0"}


def argv_for(flags: list[str], context: dict[str, str] = CONTEXT) -> list[str]:
    settings = MountSettings.from_context(parse_mount_flags(flags).applied_to(context))
    return settings.mount_argv([], Path("/s"), Path("/c"), read_only=False, mount_group=None, ca_bundle=None)


def capability(*flags: str) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(mount_flags=list(flags)),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER),
    )


def test_ro_makes_the_daemon_read_only() -> None:
    assert parse_mount_flags(["ro"]).read_only
    assert "--read-only" in argv_for(["ro"])
    assert "--read-only" not in argv_for(["rw"])


VALUED = {
    "uid=1000": "--uid 1000",
    "gid=2000": "--gid 2000",
    "file-mode=0640": "--file-mode 0640",
    "dir-mode=0750": "--dir-mode 0750",
    "metadata-ttl=5s": "--metadata-ttl 5s",
    "cache-mode=writethrough": "--cache-mode writethrough",
    "cache-size=20Gi": "--cache-size 20Gi",
}


def test_valued_options_override_the_volume_context() -> None:
    argv = " ".join(argv_for(list(VALUED)))
    for expected in VALUED.values():
        assert expected in argv
    assert "--uid 0" not in argv and "--cache-mode writeback" not in argv


def test_an_entry_with_commas_is_split_like_mount_reads_it() -> None:
    assert parse_mount_flags([" ro , uid=7", ""]).context == {"readOnly": "true", "uid": "7"}


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["noatime"], "noatime"),
        (["ro", "allow_other"], "allow_other"),
        (["uid=abc"], "uid=abc"),
        (["uid=4294967295"], "uid=4294967295"),
        (["uid"], "uid"),
        (["ro=1"], "ro=1"),
        (["file-mode=999"], "file-mode=999"),
        (["metadata-ttl=soon"], "metadata-ttl=soon"),
        (["cache-mode=lazy"], "cache-mode=lazy"),
        (["cache-size=big"], "cache-size=big"),
    ],
)
def test_unknown_or_malformed_options_are_refused_by_name(flags: list[str], named: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(repr(named))):
        parse_mount_flags(flags)


@pytest.mark.parametrize(
    "flags",
    [["ro", "rw"], ["uid=1", "uid=2"], ["ro", "cache-mode=writeback"], ["rw", "cache-mode=readonly"]],
)
def test_conflicting_options_are_refused_naming_both(flags: list[str]) -> None:
    with pytest.raises(InvalidArgument, match="conflict") as info:
        parse_mount_flags(flags)
    for flag in flags:
        assert repr(flag) in str(info.value)


def test_repeating_an_option_with_the_same_value_is_fine() -> None:
    assert parse_mount_flags(["ro", "ro", "uid=1", "uid=1"]).context == {"readOnly": "true", "uid": "1"}


def test_capability_checks_return_the_flags_and_report_bad_ones() -> None:
    assert check_capability(capability("ro")).read_only
    reason = capability_unsupported_reason(capability("bogus"))
    assert reason is not None and "'bogus'" in reason


def test_readme_documents_every_mount_option() -> None:
    text = README.read_text()
    for flag in MOUNT_FLAGS:
        assert f"`{flag.usage}`" in text, f"README does not document the mount option {flag.usage}"
