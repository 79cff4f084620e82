"""StorageClass `prefixTemplate`: the default keeps the PV-name layout, templates render from
external-provisioner's claim metadata, and a bad template is refused before S3 is touched."""

from __future__ import annotations

import pytest

from razorfs.csi.controller import volume_parameters
from razorfs.csi.errors import InvalidArgument
from razorfs.csi.prefix_template import PrefixTemplate

PV = "pvc-0b8f7c3e-5a1d-4c49-9f1e-2f6f1a7e9d11"
METADATA = {
    "csi.storage.k8s.io/pvc/name": "data",
    "csi.storage.k8s.io/pvc/namespace": "team-a",
    "csi.storage.k8s.io/pv/name": PV,
}


def test_default_template_is_the_pv_name_under_the_class_prefix() -> None:
    default = PrefixTemplate.parse("")
    assert default.render("", PV, METADATA) == PV
    assert default.render("/k8s/vols/", PV, METADATA) == f"k8s/vols/{PV}"
    assert default.render("k8s", "pvc-1", {}) == "k8s/pvc-1"  # the CSI name is the PV name


def test_namespace_and_claim_template_renders_from_provisioner_metadata() -> None:
    template = PrefixTemplate.parse("${pvc.metadata.namespace}/${pvc.metadata.name}")
    assert template.render("volumes", PV, METADATA) == "volumes/team-a/data"
    mixed = PrefixTemplate.parse("claims/${pvc.metadata.namespace}-${pvc.metadata.name}.d")
    assert mixed.render("", PV, METADATA) == "claims/team-a-data.d"


def test_long_values_are_shortened_and_stay_distinct() -> None:
    template = PrefixTemplate.parse("${pvc.metadata.namespace}/${pvc.metadata.name}")
    long_a = template.render("", PV, {**METADATA, "csi.storage.k8s.io/pvc/name": "a" * 253})
    long_b = template.render("", PV, {**METADATA, "csi.storage.k8s.io/pvc/name": "a" * 252 + "b"})
    assert long_a != long_b and all(len(part) <= 63 for part in long_a.split("/"))


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("${pvc.name}", "not a known variable"),
        ("${pvc.metadata.namespace}", "every claim would share one prefix"),
        ("shared", "every claim would share one prefix"),
        ("/${pvc.metadata.name}", "slash at either end"),
        ("${pvc.metadata.name}/", "slash at either end"),
        ("a//${pvc.metadata.name}", "empty"),
        ("../${pvc.metadata.name}", "'..'"),
        ("${pvc.metadata.name} x", "only letters"),
        ("$pvc.metadata.name", "only letters"),
        ("${pv.metadata.name}" + "x" * 300, "longer than"),
    ],
)
def test_bad_templates_are_refused_with_a_reason(template: str, why: str) -> None:
    with pytest.raises(InvalidArgument, match="prefixTemplate") as info:
        PrefixTemplate.parse(template)
    assert why in str(info.value)


def test_missing_claim_metadata_names_the_provisioner_flag() -> None:
    template = PrefixTemplate.parse("${pvc.metadata.namespace}/${pvc.metadata.name}")
    with pytest.raises(InvalidArgument, match="--extra-create-metadata"):
        template.render("", PV, {})


def test_prefix_template_is_a_provisioning_parameter_not_volume_context() -> None:
    parameters = {"endpoint": "http://s3:8333", "bucket": "b", "prefixTemplate": "${pvc.metadata.name}"}
    assert "prefixTemplate" not in volume_parameters(parameters)
