"""Fixtures of the CSI plugin tests: a started `razorfs-node` in a private temp tree, torn down
with every mount daemon and mount it made."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.csi.plugin import NodePlugin
from tests.realparts.fusemount import require_fuse
from tests.realparts.processes import RealPartMissing

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The `slow` CSI tests run under `make soak` (RAZORFS_SOAK=1) or with -m; `make test`
    deselects them (not skips them)."""
    if os.environ.get("RAZORFS_SOAK") == "1" or config.getoption("markexpr"):
        return
    long_ones = [item for item in items if item.get_closest_marker("slow") and _HERE in item.path.parents]
    if long_ones:
        config.hook.pytest_deselected(items=long_ones)
        items[:] = [item for item in items if item not in long_ones]


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
