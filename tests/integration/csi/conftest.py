"""Fixtures of the CSI plugin tests: a started `razorfs-node` in a private temp tree, torn down
with every mount daemon and mount it made."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.csi.plugin import NodePlugin
from tests.realparts.fusemount import require_fuse
from tests.realparts.processes import RealPartMissing


@pytest.fixture
def plugin_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Short paths: sockets and FUSE mountpoints under them stay well inside sun_path limits.
    return tmp_path_factory.mktemp("rzn")


@pytest.fixture
def node_plugin(plugin_root: Path) -> Iterator[NodePlugin]:
    plugin = NodePlugin(plugin_root)
    try:
        plugin.start()
        yield plugin
    finally:
        plugin.cleanup()


@pytest.fixture
def fuse_available() -> None:
    try:
        require_fuse()
    except RealPartMissing as exc:
        pytest.fail(f"real part missing: {exc}", pytrace=False)
