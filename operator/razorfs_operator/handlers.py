"""kopf registrations: one small handler per event, each delegating to the Reconciler. Importing
this module is what `kopf run -m razorfs_operator.handlers` and `razorfs-operator` both do; settings
come from razorfs_operator.config (environment)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from razorfs.store.s3_clients import preload_client_model
from razorfs.volume_spec import CRD_GROUP, CRD_PLURAL, CRD_VERSION

from .cluster import Cluster, load_api_client
from .config import OperatorConfig
from .errors import VolumeProblem
from .metrics import count_reconcile
from .node_admin import NodeAdminClient
from .outcome import retry_later
from .reconciler import FINALIZER, Reconciler
from .runtime import Runtime

ANNOTATION_PREFIX = "razorfs.io"
RESOURCE = (CRD_GROUP, CRD_VERSION, CRD_PLURAL)

# Read at import: kopf fixes a timer's interval when the handler is registered.
CONFIG = OperatorConfig.from_env()


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    # Handler progress and the last handled spec live in our annotations, not in status, which
    # the CRD's structural schema owns.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    # Reconnect watches well before idle load balancers cut them.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    executor = ThreadPoolExecutor(max_workers=CONFIG.worker_threads, thread_name_prefix="razorfs-blocking")
    memo.runtime = runtime = Runtime(
        config=CONFIG,
        cluster=Cluster(load_api_client(CONFIG.worker_threads)),
        executor=executor,
        node_admin=NodeAdminClient(
            CONFIG.node_admin_token, CONFIG.node_admin_port, CONFIG.node_admin_timeout_s, CONFIG.node_admin_tls
        ),
    )
    await runtime.blocking(preload_client_model)


@kopf.on.cleanup()
async def shut_down(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime | None = getattr(memo, "runtime", None)
    if runtime is not None:
        await runtime.node_admin.close()
        # Queued calls are dropped; running ones end by their own timeouts. Waiting here would
        # block the event loop kopf is shutting down on.
        runtime.executor.shutdown(wait=False, cancel_futures=True)


@kopf.on.create(*RESOURCE)
async def on_create(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await _converge(body, memo, recheck_s3=True)


@kopf.on.update(*RESOURCE, field="spec")
async def on_update(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await _converge(body, memo, recheck_s3=True)


@kopf.on.resume(*RESOURCE)
async def on_resume(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await _converge(body, memo, recheck_s3=False)


@kopf.on.delete(*RESOURCE)
async def on_delete(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    try:
        await Reconciler(runtime).release(body)
    except VolumeProblem as problem:
        count_reconcile("delete", problem.reason)
        raise retry_later(problem, runtime.config.deletion_retry_delay_s) from None
    count_reconcile("delete", "ok")


@kopf.timer(*RESOURCE, interval=CONFIG.resync_interval_s, initial_delay=CONFIG.resync_interval_s / 4)
async def resync(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Level-based refresh: repairs a missing PV or PVC, re-judges binding and pod use, gathers
    S3 usage and node state, and warms nodes; retries S3 if it is not known to work."""
    if body["metadata"].get("deletionTimestamp"):
        return
    runtime: Runtime = memo.runtime
    async with runtime.resync_slots:
        problem = await Reconciler(runtime).reconcile(body, recheck_s3=False, refresh=True)
    count_reconcile("resync", problem.reason if problem else "ok")


async def _converge(body: kopf.Body, memo: kopf.Memo, *, recheck_s3: bool) -> None:
    runtime: Runtime = memo.runtime
    problem = await Reconciler(runtime).reconcile(body, recheck_s3=recheck_s3, refresh=False)
    count_reconcile("converge", problem.reason if problem else "ok")
    if problem is not None:
        raise retry_later(problem, runtime.config.retry_delay_s)
