"""A PV whose volume context names its RazorVolume gives the daemon `--volume-name NAMESPACE/NAME`
(the label of its logs and metrics); a malformed name is refused, an absent one adds nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from razorfs.csi.errors import InvalidArgument
from razorfs.csi.mount_settings import MountSettings
from razorfs.volume_spec import ContextKey

BASE = {ContextKey.ENDPOINT: "http://127.0.0.1:8333", ContextKey.BUCKET: "b"}


def _argv(context: dict[str, str]) -> list[str]:
    settings = MountSettings.from_context(context)
    return settings.mount_argv([], Path("/m"), Path("/c"), read_only=False, mount_group=None, ca_bundle=None)


def test_a_named_razorvolume_labels_the_daemon() -> None:
    argv = _argv({**BASE, ContextKey.RAZOR_VOLUME_NAMESPACE: "team-a", ContextKey.RAZOR_VOLUME_NAME: "data"})
    assert argv[argv.index("--volume-name") + 1] == "team-a/data"


def test_without_a_name_the_plugin_labels_with_the_volume_id() -> None:
    assert "--volume-name" not in _argv(BASE)


@pytest.mark.parametrize("name", ["Data", "a/b", "x" * 300, "-x", "a b"])
def test_a_malformed_name_is_refused(name: str) -> None:
    with pytest.raises(InvalidArgument, match="Kubernetes object name"):
        MountSettings.from_context(
            {**BASE, ContextKey.RAZOR_VOLUME_NAMESPACE: "ns", ContextKey.RAZOR_VOLUME_NAME: name}
        )
