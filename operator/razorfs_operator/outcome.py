"""The one place where a VolumeProblem becomes what users see: the condition fields, a Kubernetes
event, the log line, and the kopf error that schedules the retry."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from .errors import VolumeProblem

log = logging.getLogger("razorfs_operator")


def report_problem(body: Any, problem: VolumeProblem, *, changed: bool) -> None:
    """Posts a Warning event and logs once per change of the problem, not on every retry."""
    if not changed:
        return
    kopf.warn(body, reason=problem.reason, message=problem.message)
    meta = body["metadata"]
    log.warning("RazorVolume %s/%s: %s: %s", meta["namespace"], meta["name"], problem.reason, problem.message)


def retry_later(problem: VolumeProblem, delay_s: float) -> kopf.TemporaryError:
    return kopf.TemporaryError(f"{problem.reason}: {problem.message}", delay=delay_s)
