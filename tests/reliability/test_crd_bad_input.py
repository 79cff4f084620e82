"""Every field of the RazorVolume CRD (charts/razorfs/files/razorvolumes-crd.yaml, applied to the real
kube-apiserver) refuses its invalid values: the API server answers 422 with a message naming the
field or the rule, before any operator sees the object."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest

from tests.reliability.conftest import GROUP, PLURAL, VERSION

pytestmark = pytest.mark.kube

VALID_SPEC: dict[str, Any] = {
    "s3": {"endpoint": "http://s3.example.test:9000", "bucket": "bucket-one", "secretRef": {"name": "creds"}},
}
DROP = object()  # remove the field instead of setting it

# (dotted field path under spec, invalid value, a fragment the API server's message must contain)
INVALID_VALUES: list[tuple[str, Any, str]] = [
    ("s3", DROP, "s3"),
    ("s3.endpoint", DROP, "endpoint"),
    ("s3.endpoint", "", "endpoint"),
    ("s3.endpoint", "ftp://s3.example.test", "endpoint"),
    ("s3.endpoint", "http://", "endpoint"),
    ("s3.endpoint", "http://host name/", "endpoint"),
    ("s3.endpoint", "http://h/" + "x" * 2048, "endpoint"),
    ("s3.bucket", DROP, "bucket"),
    ("s3.bucket", "ab", "bucket"),
    ("s3.bucket", "Bad_Bucket", "bucket"),
    ("s3.bucket", "-bucket", "bucket"),
    ("s3.bucket", "b" * 64, "bucket"),
    ("s3.bucket", 42, "bucket"),
    ("s3.prefix", "/leading", "prefix"),
    ("s3.prefix", "trailing/", "prefix"),
    ("s3.prefix", "p" * 513, "prefix"),
    ("s3.region", "US East", "region"),
    ("s3.region", "r" * 65, "region"),
    ("s3.forcePathStyle", "yes", "forcePathStyle"),
    ("s3.secretRef", DROP, "secretRef"),
    ("s3.secretRef", {}, "name"),
    ("s3.secretRef.name", "Bad_Name", "name"),
    ("s3.secretRef.name", "n" * 254, "name"),
    ("s3.caBundleSecretRef", {}, "name"),
    ("s3.caBundleSecretRef.name", "../etc", "name"),
    ("s3.sse", {}, "type"),
    ("s3.sse", {"type": "DES"}, "type"),
    ("s3.sse", {"type": "AES256", "kmsKeyID": "k1"}, "kmsKeyID"),
    ("capacity", "lots", "capacity"),
    ("capacity", "10 Gi", "capacity"),
    ("capacity", "-1Gi", "capacity"),
    ("capacity", "1Xi", "capacity"),
    ("accessModes", [], "accessModes"),
    ("accessModes", ["ReadWriteEverywhere"], "accessModes"),
    ("accessModes", ["ReadWriteMany", "ReadWriteMany"], "accessModes"),
    ("accessModes", ["ReadWriteOncePod", "ReadWriteMany"], "ReadWriteOncePod"),
    ("reclaimPolicy", "Recycle", "reclaimPolicy"),
    ("reclaimPolicy", "Delete", "prefix"),  # Delete without a prefix would empty the whole bucket
    ("cache.mode", "writearound", "mode"),
    ("cache.mode", "readonly", "readonly"),  # a read-only cache on a writable mount
    ("cache.size", "big", "size"),
    ("cache.size", "1 Gi", "size"),
    ("cache.metadataTTL", "1 day", "metadataTTL"),
    ("cache.metadataTTL", "-1s", "metadataTTL"),
    ("cache.metadataTTL", "1d", "metadataTTL"),
    ("cache.warmup.paths", ["/absolute"], "paths"),
    ("cache.warmup.paths", [".."], "paths"),
    ("cache.warmup.paths", ["../other-prefix"], "paths"),
    ("cache.warmup.paths", ["a/../../b"], "paths"),
    ("cache.warmup.paths", ["a/.."], "paths"),
    ("cache.warmup.paths", ["p"] * 65, "paths"),
    ("cache.warmup.paths", ["x" * 1025], "paths"),
    ("mountOptions.uid", -1, "uid"),
    ("mountOptions.uid", 4294967295, "uid"),
    ("mountOptions.uid", "0", "uid"),
    ("mountOptions.gid", -1, "gid"),
    ("mountOptions.fileMode", "999", "fileMode"),
    ("mountOptions.fileMode", "0o644", "fileMode"),
    ("mountOptions.fileMode", "rw-r--r--", "fileMode"),
    ("mountOptions.dirMode", "8888", "dirMode"),
    ("mountOptions.readOnly", "true", "readOnly"),
    ("storageClassName", "Bad_Class", "storageClassName"),
    ("storageClassName", "s" * 254, "storageClassName"),
]


def spec_with(path: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(VALID_SPEC)
    *parents, leaf = path.split(".")
    node = spec
    for part in parents:
        node = node.setdefault(part, {})
    if value is DROP:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return spec


def create(razorvolume_api: Any, namespace: str, spec: dict[str, Any]) -> Any:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RazorVolume",
        "metadata": {"name": f"rv-{uuid.uuid4().hex[:8]}"},
        "spec": spec,
    }
    return razorvolume_api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)


def test_the_valid_base_spec_is_accepted(razorvolume_api: Any, kube_namespace: str) -> None:
    created = create(razorvolume_api, kube_namespace, copy.deepcopy(VALID_SPEC))
    assert created["spec"]["s3"]["bucket"] == "bucket-one"


@pytest.mark.parametrize(
    "path,value,fragment",
    INVALID_VALUES,
    ids=[f"{p}={'<dropped>' if v is DROP else json.dumps(v)[:24]}" for p, v, _ in INVALID_VALUES],
)
def test_invalid_field_value_is_rejected_with_a_message(
    razorvolume_api: Any, kube_namespace: str, path: str, value: Any, fragment: str
) -> None:
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as caught:
        create(razorvolume_api, kube_namespace, spec_with(path, value))
    assert caught.value.status == 422, caught.value.body
    message = json.loads(caught.value.body)["message"]
    assert fragment in message, message
