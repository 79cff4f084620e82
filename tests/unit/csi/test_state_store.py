"""State dir records survive a reload; credentials are private files."""

from __future__ import annotations

import stat
from pathlib import Path

from razorfs.csi.mount_settings import Credentials
from razorfs.csi.state_store import DaemonIdentity, StateStore, VolumeRecord, volume_key


def test_records_round_trip_and_are_removed(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    record = VolumeRecord(
        volume_id="rz1:a:b:p:c:d/e",
        staging_path="/k/stage",
        cache_dir="/cache/x",
        argv=["razorfs", "mount"],
        targets={"/k/t1": False, "/k/t2": True},
        daemon=DaemonIdentity(pid=42, start_ticks=1234),
    )
    store.save(record)
    assert StateStore(tmp_path / "state").load_all() == [record]
    store.remove(record.volume_id)
    assert store.load_all() == []


def test_credentials_file_is_mode_0600_and_outside_the_record(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    store.save(VolumeRecord("vol", "/s", "/c", ["razorfs"]))
    store.save_credentials("vol", Credentials("AKID", "secret-xyz"))
    directory = store.volume_dir("vol")
    assert stat.S_IMODE((directory / "credentials.json").stat().st_mode) == 0o600
    assert "secret-xyz" not in (directory / "volume.json").read_text()
    assert store.load_credentials("vol") == Credentials("AKID", "secret-xyz")
    assert store.load_credentials("other") == Credentials()


def test_volume_keys_are_file_names_for_any_id() -> None:
    assert "/" not in volume_key("../../etc")
    assert volume_key("a") != volume_key("b")
