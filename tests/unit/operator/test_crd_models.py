"""The pydantic RazorVolume models and the chart's CRD schema describe the same fields with the same
types, enums, required-ness and (for the spec) defaults; neither can change without the other."""

from __future__ import annotations

import types
import typing
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from razorfs.volume_spec import RazorVolumeSpec, RazorVolumeStatus

CRD_FILE = Path(__file__).resolve().parents[3] / "charts" / "razorfs" / "files" / "razorvolumes-crd.yaml"

Shape = dict[str, Any]


def crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD_FILE.read_text())
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def shape_of_schema(node: dict[str, Any], with_defaults: bool) -> Shape:
    shape: Shape = {"type": node["type"]}
    if "enum" in node:
        shape["enum"] = sorted(node["enum"])
    if with_defaults and "default" in node:
        shape["default"] = node["default"]
    if node["type"] == "object":
        shape["required"] = sorted(node.get("required", []))
        shape["properties"] = {
            name: shape_of_schema(child, with_defaults) for name, child in node.get("properties", {}).items()
        }
    if node["type"] == "array":
        shape["items"] = shape_of_schema(node["items"], with_defaults)
    return shape


def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        assert len(args) == 1, annotation
        return args[0]
    return annotation


def shape_of_annotation(annotation: Any, with_defaults: bool) -> Shape:
    annotation = _unwrap_optional(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return {"type": "string", "enum": sorted(typing.get_args(annotation))}
    if origin is list:
        (item,) = typing.get_args(annotation)
        return {"type": "array", "items": shape_of_annotation(item, with_defaults)}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return shape_of_model(annotation, with_defaults)
    simple = {str: "string", int: "integer", bool: "boolean", float: "number", datetime: "string"}
    return {"type": simple[annotation]}


def shape_of_model(model: type[BaseModel], with_defaults: bool) -> Shape:
    properties: dict[str, Shape] = {}
    required = []
    for name, field in model.model_fields.items():
        alias = field.alias or name
        shape = shape_of_annotation(field.annotation, with_defaults)
        if field.is_required():
            required.append(alias)
        elif with_defaults:
            default = field.get_default(call_default_factory=True)
            if isinstance(default, BaseModel):
                shape["default"] = default.model_dump(by_alias=True, exclude_none=True)
            elif default is not None:
                shape["default"] = default
        properties[alias] = shape
    return {"type": "object", "required": sorted(required), "properties": properties}


def test_spec_model_matches_the_crd_spec_schema() -> None:
    expected = shape_of_schema(crd_schema()["properties"]["spec"], with_defaults=True)
    assert shape_of_model(RazorVolumeSpec, with_defaults=True) == expected


def test_status_model_matches_the_crd_status_schema() -> None:
    expected = shape_of_schema(crd_schema()["properties"]["status"], with_defaults=False)
    assert shape_of_model(RazorVolumeStatus, with_defaults=False) == expected


def test_comparison_notices_a_field_the_model_lacks() -> None:
    schema = crd_schema()["properties"]["spec"]
    schema["properties"]["s3"]["properties"]["newField"] = {"type": "string"}
    assert shape_of_model(RazorVolumeSpec, with_defaults=True) != shape_of_schema(schema, with_defaults=True)


def test_comparison_notices_a_changed_default() -> None:
    schema = crd_schema()["properties"]["spec"]
    schema["properties"]["reclaimPolicy"]["default"] = "Delete"
    assert shape_of_model(RazorVolumeSpec, with_defaults=True) != shape_of_schema(schema, with_defaults=True)


def test_defaulted_spec_round_trips_through_the_model() -> None:
    spec = {
        "s3": {
            "endpoint": "http://s3:9000",
            "bucket": "b1",
            "prefix": "team/vol",
            "region": "us-east-1",
            "forcePathStyle": True,
            "authentication": "secret",
            "secretRef": {"name": "creds"},
            "sse": {"type": "aws:kms", "kmsKeyID": "k"},
        },
        "capacity": "1Ti",
        "accessModes": ["ReadWriteMany"],
        "reclaimPolicy": "Delete",
        "cache": {"mode": "writeback", "size": "10Gi", "metadataTTL": "1s", "warmup": {"paths": ["a/"]}},
        "mountOptions": {"uid": 1000, "fileMode": "0644", "dirMode": "0755", "readOnly": False},
    }
    model = RazorVolumeSpec.model_validate(spec)
    assert model.model_dump(by_alias=True, exclude_none=True) == spec
    assert model.s3.key_prefix == "team/vol/"


def _schema_nodes(node: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, child in node.get("properties", {}).items():
        if path == "" and name == "metadata":
            continue  # the API server publishes ObjectMeta's own documentation
        found += _schema_nodes(child, f"{path}.{name}")
    if "items" in node:
        found += _schema_nodes(node["items"], f"{path}[]")
    return found


def test_every_crd_field_has_a_description_for_kubectl_explain() -> None:
    missing = [path or "(root)" for path, node in _schema_nodes(crd_schema(), "") if not node.get("description")]
    assert missing == []


def test_every_crd_refusal_is_a_sentence_not_a_regular_expression() -> None:
    for path, node in _schema_nodes(crd_schema(), ""):
        assert "pattern" not in node or path.startswith(".spec.cache.warmup"), f"{path}: use a rule with a message"
        for rule in node.get("x-kubernetes-validations", []):
            assert rule.get("message", "").count(" ") >= 3, f"{path}: rule {rule['rule']!r} needs a sentence"
