"""Typed failures of reconciling a RazorVolume. Each carries the condition reason it becomes and a
message fit for `kubectl describe`; messages never contain credentials. They are translated to
conditions and events in one place (razorfs_operator.outcome)."""

from __future__ import annotations


class VolumeProblem(Exception):
    """A reason why a RazorVolume cannot be Ready (or deleted) right now."""

    reason = "ReconcileError"
    # A permanent problem needs the user to act (fix the Secret, create the bucket); the operator
    # keeps retrying slowly, but the phase says Failed.
    permanent = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidSpec(VolumeProblem):
    reason = "InvalidSpec"
    permanent = True


class EndpointNotAllowed(VolumeProblem):
    """The volume's endpoint is outside operator.allowedEndpoints: nothing is sent to it."""

    reason = "EndpointNotAllowed"
    permanent = True


class SecretNotFound(VolumeProblem):
    reason = "SecretNotFound"
    permanent = True


class SecretIncomplete(VolumeProblem):
    reason = "SecretIncomplete"
    permanent = True


class CredentialsRejected(VolumeProblem):
    reason = "CredentialsRejected"
    permanent = True


class S3BucketMissing(VolumeProblem):
    reason = "BucketNotFound"
    permanent = True


class S3AccessDenied(VolumeProblem):
    reason = "AccessDenied"
    permanent = True


class S3Unreachable(VolumeProblem):
    reason = "S3Unreachable"


class S3RequestFailed(VolumeProblem):
    reason = "S3RequestFailed"


class ClaimConflict(VolumeProblem):
    """A PVC or PV of the name the operator needs exists and belongs to something else."""

    reason = "ClaimConflict"
    permanent = True


class KubernetesRequestFailed(VolumeProblem):
    reason = "KubernetesRequestFailed"


class ClaimInUse(VolumeProblem):
    """Deletion waits: pods still use the claim."""

    reason = "PodsUsingClaim"


class ObjectsStillTerminating(VolumeProblem):
    """Deletion waits: the PVC or PV has been deleted but is held by its protection finalizer."""

    reason = "WaitingForRemoval"
