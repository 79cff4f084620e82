"""Argument checks on volume IDs, kubelet paths and capabilities."""

from __future__ import annotations

from pathlib import Path

import pytest

from razorfs.csi.errors import InvalidArgument
from razorfs.csi.validation import (
    capability_unsupported_reason,
    check_capabilities,
    check_capability,
    check_kubelet_path,
    check_volume_id,
    is_read_only_mode,
)
from razorfs_wire.csi.v1 import csi_pb2

Mode = csi_pb2.VolumeCapability.AccessMode


def mount_capability(mode: int = Mode.SINGLE_NODE_WRITER, fs_type: str = "") -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(fs_type=fs_type),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=mode),
    )


@pytest.mark.parametrize("volume_id", ["pvc-1", "rz1:http%3A%2F%2Fh:r:p:b:pvc-1", "ns/name", "fake-vol-id-123"])
def test_ordinary_volume_ids_are_accepted(volume_id: str) -> None:
    assert check_volume_id(volume_id) == volume_id


@pytest.mark.parametrize(
    "volume_id", ["", "..", "../etc", "a/../b", "/abs", "a/./b", "a\\b", "bad\x00id", "x" * 1025, "tab\tid"]
)
def test_traversal_and_malformed_volume_ids_are_invalid(volume_id: str) -> None:
    with pytest.raises(InvalidArgument):
        check_volume_id(volume_id)


def test_paths_inside_the_kubelet_dir_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "pods").mkdir()
    path = check_kubelet_path("target_path", str(tmp_path / "pods" / "uid" / "mount"), tmp_path)
    assert path == tmp_path / "pods" / "uid" / "mount"


@pytest.mark.parametrize("path", ["", "relative/path", "/etc/passwd", "/{root}/../x", "/{root}/a/../../x", "/{root}"])
def test_paths_outside_the_kubelet_dir_or_with_dotdot_are_invalid(tmp_path: Path, path: str) -> None:
    with pytest.raises(InvalidArgument):
        check_kubelet_path("target_path", path.replace("/{root}", str(tmp_path)), tmp_path)


def test_a_symlink_leading_out_of_the_kubelet_dir_is_invalid(tmp_path: Path) -> None:
    kubelet = tmp_path / "kubelet"
    kubelet.mkdir()
    (kubelet / "escape").symlink_to(tmp_path)
    with pytest.raises(InvalidArgument, match="outside"):
        check_kubelet_path("target_path", str(kubelet / "escape" / "mnt"), kubelet)


def test_block_access_is_refused() -> None:
    block = csi_pb2.VolumeCapability(
        block=csi_pb2.VolumeCapability.BlockVolume(),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.SINGLE_NODE_WRITER),
    )
    with pytest.raises(InvalidArgument, match="block"):
        check_capability(block)
    assert capability_unsupported_reason(block) is not None


def test_missing_access_mode_or_type_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="access_mode"):
        check_capability(csi_pb2.VolumeCapability(mount=csi_pb2.VolumeCapability.MountVolume()))
    no_type = csi_pb2.VolumeCapability(access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.SINGLE_NODE_WRITER))
    with pytest.raises(InvalidArgument, match="mount access type"):
        check_capability(no_type)


def test_unknown_mode_and_foreign_fs_type_are_refused() -> None:
    with pytest.raises(InvalidArgument):
        check_capability(mount_capability(Mode.UNKNOWN))
    with pytest.raises(InvalidArgument, match="fs_type"):
        check_capability(mount_capability(fs_type="ext4"))


def test_empty_capability_list_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        check_capabilities([])
    check_capabilities([mount_capability(), mount_capability(Mode.MULTI_NODE_MULTI_WRITER)])


def test_reader_only_modes_are_read_only() -> None:
    assert is_read_only_mode(mount_capability(Mode.MULTI_NODE_READER_ONLY))
    assert is_read_only_mode(mount_capability(Mode.SINGLE_NODE_READER_ONLY))
    assert not is_read_only_mode(mount_capability(Mode.MULTI_NODE_MULTI_WRITER))


def _kubelet_tree(tmp_path: Path) -> Path:
    kubelet = tmp_path / "kubelet"
    (kubelet / "pods" / "uid" / "volumes" / "kubernetes.io~csi" / "pv").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    return kubelet


def test_a_symlink_at_the_leaf_of_a_target_path_is_refused(tmp_path: Path) -> None:
    kubelet = _kubelet_tree(tmp_path)
    target = kubelet / "pods" / "uid" / "volumes" / "kubernetes.io~csi" / "pv" / "mount"
    target.symlink_to(kubelet / "pods")  # inside the kubelet dir, still a link the bind would follow
    with pytest.raises(InvalidArgument, match="is a symlink"):
        check_kubelet_path("target_path", str(target), kubelet, frozenset())


def test_a_symlink_anywhere_below_the_kubelet_dir_is_refused(tmp_path: Path) -> None:
    kubelet = _kubelet_tree(tmp_path)
    (kubelet / "pods" / "linked").symlink_to(kubelet / "pods" / "uid")
    path = kubelet / "pods" / "linked" / "volumes" / "kubernetes.io~csi" / "pv" / "mount"
    with pytest.raises(InvalidArgument, match=r"pods/linked is a symlink"):
        check_kubelet_path("target_path", str(path), kubelet, frozenset())


def test_a_mountpoint_leaf_is_accepted_without_being_looked_at(tmp_path: Path) -> None:
    kubelet = _kubelet_tree(tmp_path)
    target = kubelet / "pods" / "uid" / "volumes" / "kubernetes.io~csi" / "pv" / "mount"
    target.symlink_to(tmp_path / "elsewhere")  # were it stat'ed it would be refused
    assert check_kubelet_path("target_path", str(target), kubelet, frozenset({str(target)})) == target


def test_a_plain_path_and_a_missing_leaf_pass(tmp_path: Path) -> None:
    kubelet = _kubelet_tree(tmp_path)
    target = kubelet / "pods" / "uid" / "volumes" / "kubernetes.io~csi" / "pv" / "mount"
    assert check_kubelet_path("target_path", str(target), kubelet, frozenset()) == target
