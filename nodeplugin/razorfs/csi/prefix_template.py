"""Where a StorageClass claim's objects live: the class's `prefix` joined with its
`prefixTemplate`, rendered from the claim's metadata that external-provisioner passes as CreateVolume
parameters when started with --extra-create-metadata (the chart starts it so). The default
template, `${pv.metadata.name}`, keeps the layout of earlier versions: `<prefix>/pvc-<uid>`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from razorfs.csi.errors import InvalidArgument, quoted
from razorfs.csi.volume_handle import short_segment
from razorfs.store.location import join_key

PREFIX_TEMPLATE_PARAMETER = "prefixTemplate"
DEFAULT_PREFIX_TEMPLATE = "${pv.metadata.name}"
PREFIX_TEMPLATE_MAX_BYTES = 256
# Template variable -> the CreateVolume parameter external-provisioner fills it from.
VARIABLES = {
    "pvc.metadata.namespace": "csi.storage.k8s.io/pvc/namespace",
    "pvc.metadata.name": "csi.storage.k8s.io/pvc/name",
    "pv.metadata.name": "csi.storage.k8s.io/pv/name",
}
# A template must tell claims apart: one of these, or every claim would get the same prefix.
_UNIQUE_VARIABLES = ("pvc.metadata.name", "pv.metadata.name")
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_LITERAL = re.compile(r"[A-Za-z0-9._/-]*")
_CHOICES = ", ".join(f"${{{name}}}" for name in VARIABLES)


def _fail(template: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"StorageClass parameter {PREFIX_TEMPLATE_PARAMETER} {quoted(template)}: {why}")


@dataclass(frozen=True)
class PrefixTemplate:
    text: str

    @classmethod
    def parse(cls, text: str) -> PrefixTemplate:
        """Checks the template once, before anything is written to S3."""
        text = text.strip() or DEFAULT_PREFIX_TEMPLATE
        if len(text.encode()) > PREFIX_TEMPLATE_MAX_BYTES:
            raise _fail(text, f"is longer than {PREFIX_TEMPLATE_MAX_BYTES} bytes")
        names = _VARIABLE.findall(text)
        for name in names:
            if name not in VARIABLES:
                raise _fail(text, f"{quoted('${' + name + '}')} is not a known variable; use {_CHOICES}")
        for literal in _VARIABLE.split(text)[::2]:
            if not _LITERAL.fullmatch(literal):
                raise _fail(text, "outside ${...} only letters, digits, '.', '_', '-' and '/' are allowed")
        if not any(name in _UNIQUE_VARIABLES for name in names):
            raise _fail(
                text, "must use ${pvc.metadata.name} or ${pv.metadata.name}, or every claim would share one prefix"
            )
        segments = _VARIABLE.sub("x", text).split("/")
        if any(segment in ("", ".", "..") for segment in segments):
            raise _fail(text, "has an empty, '.' or '..' path segment (or a slash at either end)")
        return cls(text)

    def render(self, base_prefix: str, volume_name: str, parameters: Mapping[str, str]) -> str:
        """The volume's key prefix (no slash at either end). Values longer than 63 characters are
        cut to 40 plus a hash, as volume names always were."""

        def value_of(match: re.Match[str]) -> str:
            name = match.group(1)
            value = parameters.get(VARIABLES[name], "")
            if not value and name == "pv.metadata.name":
                value = volume_name  # the CSI volume name is the PV name
            if not value:
                raise _fail(
                    self.text,
                    f"CreateVolume got no {VARIABLES[name]} parameter for ${{{name}}}: "
                    "run csi-provisioner with --extra-create-metadata",
                )
            return short_segment(value)

        return join_key(base_prefix.strip("/"), _VARIABLE.sub(value_of, self.text)).strip("/")
