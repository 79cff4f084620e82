"""What the Dockerfile promises, checked statically: the entry points it runs exist in pyproject and
resolve to functions, and the chart runs only those. The image itself is built with buildah and run
as the chart's pods on the real node in tests/e2e/."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from .helm import REPO, render

DOCKERFILE = REPO / "Dockerfile"


def project_scripts() -> dict[str, str]:
    with open(REPO / "pyproject.toml", "rb") as f:
        scripts: dict[str, str] = tomllib.load(f)["project"]["scripts"]
    return scripts


def dockerfile_entry_points() -> set[str]:
    text = DOCKERFILE.read_text()
    # Smoke-run lines (`name --help`) and the default CMD name the entry points the image promises.
    named = set(re.findall(r"(razorfs[\w-]*) --help", text))
    named |= set(re.findall(r'^CMD \["([\w-]+)"', text, re.MULTILINE))
    return named


def source_of(module: str) -> Path:
    roots = {"razorfs": REPO / "nodeplugin", "razorfs_operator": REPO / "operator"}
    base = roots[module.split(".")[0]] / Path(*module.split("."))
    return base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"


def test_dockerfile_is_multi_stage_with_fuse3_runtime_and_non_root_user() -> None:
    text = DOCKERFILE.read_text()
    assert len(re.findall(r"^FROM ", text, re.MULTILINE)) >= 2
    runtime_packages = re.search(r'^ENV RUNTIME_PACKAGES="([^"]+)"', text, re.MULTILINE)
    assert runtime_packages and {"fuse3", "libfuse3-3", "python3"} <= set(runtime_packages.group(1).split())
    user = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user and not user[-1].startswith(("0", "root"))


def test_dockerfile_names_the_three_entry_points_from_pyproject() -> None:
    named = dockerfile_entry_points()
    assert named == {"razorfs", "razorfs-node", "razorfs-operator"}
    assert named <= set(project_scripts())


def test_every_entry_point_resolves_to_a_function_in_the_source_tree() -> None:
    for script, target in project_scripts().items():
        module, _, function = target.partition(":")
        path = source_of(module)
        assert path.exists(), f"{script}: {module} has no source at {path}"
        tree = ast.parse(path.read_text())
        functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        assert function in functions, f"{script}: {module} defines no {function}()"


def test_chart_containers_run_only_entry_points_the_image_has() -> None:
    scripts = set(project_scripts())
    commands = set()
    for owner in render(include_crds=False):
        if owner["kind"] not in ("Deployment", "DaemonSet"):
            continue
        for container in owner["spec"]["template"]["spec"]["containers"]:
            if "command" in container:
                commands.add(container["command"][0])
    assert commands == {"razorfs-operator", "razorfs-node"}
    assert commands <= scripts


def test_chart_arguments_parse_with_the_entry_points_own_parsers() -> None:
    from razorfs.csi.main import build_parser as node_parser
    from razorfs_operator.main import build_parser as operator_parser

    for owner in render(include_crds=False, sets={"logLevel": "debug", "operator.clusterWide": "false"}):
        if owner["kind"] not in ("Deployment", "DaemonSet"):
            continue
        for container in owner["spec"]["template"]["spec"]["containers"]:
            args = [a.replace("$(NODE_NAME)", "node-1") for a in container.get("args", [])]
            if container.get("command") == ["razorfs-node"]:
                node_parser().parse_args(args)  # exits (SystemExit) on an unknown flag or bad choice
            elif container.get("command") == ["razorfs-operator"]:
                parsed = operator_parser().parse_args(args)
                assert parsed.node_admin_port == 9810
