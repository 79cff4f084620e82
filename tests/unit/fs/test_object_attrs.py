"""Attributes <-> s3fs/rclone object metadata."""

from __future__ import annotations

import os
import stat

from razorfs.store.object_attrs import (
    AttrDefaults,
    ObjectAttrs,
    attrs_from_metadata,
    has_attr_headers,
    metadata_from_attrs,
)

DEFAULTS = AttrDefaults(uid=1000, gid=2000, file_mode=0o640, dir_mode=0o750)


def test_s3fs_headers_round_trip_with_file_type_bits() -> None:
    attrs = ObjectAttrs(mode=stat.S_IFREG | 0o600, uid=7, gid=8, mtime=1_700_000_000)
    meta = metadata_from_attrs(attrs)
    assert meta == {
        "mode": str(0o100600),
        "uid": "7",
        "gid": "8",
        "mtime": "1700000000",
        "atime": "1700000000",
        "ctime": "1700000000",
    }
    assert attrs_from_metadata(meta, 5.0, DEFAULTS) == attrs


def test_object_without_headers_gets_mount_defaults_and_last_modified() -> None:
    attrs = attrs_from_metadata({}, 1234.5, DEFAULTS)
    assert attrs == ObjectAttrs(stat.S_IFREG | 0o640, 1000, 2000, 1234.5)
    marker = attrs_from_metadata({}, 1.0, DEFAULTS, directory=True)
    assert marker.mode == stat.S_IFDIR | 0o750


def test_rclone_fractional_mtime_and_symlink_mode_are_read() -> None:
    attrs = attrs_from_metadata({"Mtime": "1700000000.25", "mode": str(stat.S_IFLNK | 0o777)}, 1.0, DEFAULTS)
    assert attrs.mtime == 1700000000.25
    assert attrs.is_symlink


def test_garbled_headers_fall_back_to_defaults() -> None:
    attrs = attrs_from_metadata({"mode": "rw-r--r--", "uid": "x", "mtime": "soon"}, 9.0, DEFAULTS)
    assert attrs == ObjectAttrs(stat.S_IFREG | 0o640, 1000, 2000, 9.0)


def test_attrs_equal_as_stored_ignore_sub_second_mtime() -> None:
    a = ObjectAttrs(stat.S_IFREG | 0o644, 1, 2, 1_700_000_000.75)
    assert a.stored_equal(a.replace(mtime=1_700_000_000.0))
    assert not a.stored_equal(a.replace(mtime=1_700_000_001.0))
    assert not a.stored_equal(a.replace(mode=stat.S_IFREG | 0o600))


def test_atime_and_ctime_round_trip_and_default_to_the_mtime() -> None:
    attrs = ObjectAttrs(stat.S_IFREG | 0o644, 1, 2, mtime=1_700_000_000, atime=978_307_201, ctime=1_700_000_050)
    meta = metadata_from_attrs(attrs)
    assert (meta["atime"], meta["ctime"]) == ("978307201", "1700000050")
    assert attrs_from_metadata(meta, 5.0, DEFAULTS) == attrs
    old = attrs_from_metadata({"mode": "33188", "mtime": "1600000000"}, 5.0, DEFAULTS)
    assert (old.access_time, old.change_time) == (1_600_000_000, 1_600_000_000)


def test_a_change_moves_the_ctime_only() -> None:
    attrs = ObjectAttrs(stat.S_IFREG | 0o644, 1, 2, mtime=10.0, atime=5.0, ctime=10.0)
    changed = attrs.changed(99.0, mode=stat.S_IFREG | 0o600)
    assert (changed.mtime, changed.access_time, changed.change_time) == (10.0, 5.0, 99.0)
    assert not changed.stored_equal(attrs)


def test_special_files_keep_their_type_and_devices_their_number() -> None:
    for kind in (stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK):
        attrs = attrs_from_metadata({"mode": str(kind | 0o640)}, 1.0, DEFAULTS)
        assert stat.S_IFMT(attrs.mode) == kind and attrs.is_special
    device = ObjectAttrs(stat.S_IFCHR | 0o600, 0, 0, 1.0, rdev=os.makedev(1, 3))
    meta = metadata_from_attrs(device)
    assert meta["rdev"] == str(os.makedev(1, 3))
    assert attrs_from_metadata(meta, 1.0, DEFAULTS).rdev == os.makedev(1, 3)
    assert "rdev" not in metadata_from_attrs(ObjectAttrs(stat.S_IFIFO | 0o600, 0, 0, 1.0))


def test_directory_marker_mode_without_type_bits_reads_as_a_directory() -> None:
    # s3fs 1.90 writes "493" (0755, no S_IFDIR) on a directory marker after a chown.
    attrs = attrs_from_metadata({"mode": "493", "uid": "123", "gid": "456"}, 1.0, DEFAULTS, directory=True)
    assert attrs.mode == stat.S_IFDIR | 0o755 and (attrs.uid, attrs.gid) == (123, 456)
    assert has_attr_headers({"Mode": "493"}) and not has_attr_headers({"mtime": "1"})
