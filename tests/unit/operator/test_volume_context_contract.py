"""Contract between the operator and the node plugin: every spec the CRD admits becomes a PV volume
context that the node plugin's parser (razorfs.csi.mount_settings) accepts and reads back to the
same settings. Specs are generated from the CRD's own format rules (`self.matches(...)`) and enums."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from razorfs.csi.mount_settings import MountSettings
from razorfs.volume_spec import RazorVolumeSpec
from razorfs_operator.volume_objects import volume_attributes

CRD_FILE = Path(__file__).resolve().parents[3] / "charts" / "razorfs" / "files" / "razorvolumes-crd.yaml"
SPEC = yaml.safe_load(CRD_FILE.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def _pattern(*path: str) -> st.SearchStrategy[str]:
    node: dict[str, Any] = SPEC
    for part in path:
        node = node["properties"][part]
    rules = [re.fullmatch(r"self\.matches\('(.*)'\)", rule["rule"]) for rule in node["x-kubernetes-validations"]]
    (regex,) = [match.group(1) for match in rules if match]
    return st.from_regex(regex, fullmatch=True).filter(lambda text: len(text) <= node.get("maxLength", 64))


def _enum(*path: str) -> st.SearchStrategy[str]:
    node: dict[str, Any] = SPEC
    for part in path:
        node = node["properties"][part]
    return st.sampled_from(node["enum"])


ids = st.integers(min_value=0, max_value=4294967294)
specs = st.builds(
    lambda bucket, prefix, region, path_style, sse, mode, size, ttl, uid, gid, fmode, dmode, ro: {
        "s3": {
            "endpoint": "https://s3.example.test",
            "bucket": bucket,
            "prefix": prefix,
            "region": region,
            "forcePathStyle": path_style,
            "secretRef": {"name": "creds"},
            **({"sse": sse} if sse else {}),
        },
        "cache": {"mode": mode, "size": size, "metadataTTL": ttl},
        "mountOptions": {
            **({"uid": uid} if uid is not None else {}),
            **({"gid": gid} if gid is not None else {}),
            "fileMode": fmode,
            "dirMode": dmode,
            "readOnly": ro,
        },
    },
    bucket=_pattern("s3", "bucket"),
    prefix=st.one_of(st.just(""), st.from_regex(r"[a-z0-9][a-z0-9/_-]{0,30}[a-z0-9]", fullmatch=True)).filter(
        lambda p: "//" not in p
    ),
    region=_pattern("s3", "region"),
    path_style=st.booleans(),
    sse=st.one_of(st.none(), st.just({"type": "AES256"}), st.just({"type": "aws:kms", "kmsKeyID": "arn:key/1"})),
    mode=_enum("cache", "mode"),
    size=_pattern("cache", "size"),
    ttl=_pattern("cache", "metadataTTL"),
    uid=st.one_of(st.none(), ids),
    gid=st.one_of(st.none(), ids),
    fmode=_pattern("mountOptions", "fileMode"),
    dmode=_pattern("mountOptions", "dirMode"),
    ro=st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(specs)
def test_node_plugin_reads_back_what_the_operator_writes(raw: dict[str, Any]) -> None:
    spec = RazorVolumeSpec.model_validate(raw)
    parsed = MountSettings.from_context(volume_attributes(spec))
    assert (parsed.endpoint, parsed.bucket, parsed.prefix) == (spec.s3.endpoint, spec.s3.bucket, spec.s3.prefix)
    assert parsed.region == spec.s3.region and parsed.force_path_style == spec.s3.force_path_style
    assert parsed.sse == (spec.s3.sse.type if spec.s3.sse else "")
    assert parsed.sse_kms_key_id == (spec.s3.sse.kms_key_id if spec.s3.sse else None)
    assert (parsed.cache_mode, parsed.cache_size, parsed.metadata_ttl) == (
        spec.cache.mode,
        spec.cache.size,
        spec.cache.metadata_ttl,
    )
    assert (parsed.uid, parsed.gid) == (spec.mount_options.uid, spec.mount_options.gid)
    assert (parsed.file_mode, parsed.dir_mode) == (spec.mount_options.file_mode, spec.mount_options.dir_mode)
    assert parsed.read_only == spec.mount_options.read_only


def test_the_node_plugin_reads_back_a_volumes_mount_pod_settings() -> None:
    spec = RazorVolumeSpec.model_validate({
        "s3": {"endpoint": "http://s3:9000", "bucket": "b", "secretRef": {"name": "s"}},
        "mountPod": {"resources": {"limits": {"memory": "2Gi"}}, "priorityClassName": "p",
                     "tolerations": [{"key": "k", "operator": "Exists", "tolerationSeconds": 30}]},
    })  # fmt: skip
    parsed = MountSettings.from_context(volume_attributes(spec))
    assert json.loads(parsed.mount_pod) == {
        "resources": {"limits": {"memory": "2Gi"}},
        "priorityClassName": "p",
        "tolerations": [{"key": "k", "operator": "Exists", "tolerationSeconds": 30}],
    }
    plain = RazorVolumeSpec.model_validate({"s3": spec.s3.model_dump(by_alias=True)})
    assert MountSettings.from_context(volume_attributes(plain)).mount_pod == ""
