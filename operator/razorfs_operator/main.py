"""`razorfs-operator`: a thin wrapper that turns command-line flags into the operator's settings and
runs kopf with razorfs_operator.handlers (liveness endpoint, namespaces, peering)."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import fields

import urllib3

from razorfs.log_format import add_log_format_argument, configure_logging

from .config import ENV_PREFIX, OperatorConfig, parse_bool


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="razorfs-operator", description="Reconciles RazorVolume objects.")
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable; glob patterns allowed); default: all namespaces",
    )
    parser.add_argument(
        "--liveness",
        default=os.environ.get("RAZORFS_OPERATOR_LIVENESS", "http://0.0.0.0:8080/healthz"),
        help="kopf liveness endpoint URL (empty disables it)",
    )
    parser.add_argument(
        "--peering",
        default=os.environ.get("RAZORFS_OPERATOR_PEERING", ""),
        help="kopf peering name for leader-safe replicas (needs kopf's peering CRDs); default standalone",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("RAZORFS_OPERATOR_METRICS_PORT", "0")),
        help="serve Prometheus metrics on this port (0: off; env RAZORFS_OPERATOR_METRICS_PORT)",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    add_log_format_argument(parser)
    defaults = OperatorConfig.from_env()
    for field in fields(OperatorConfig):
        flag = "--" + field.name.replace("_", "-")
        parser.add_argument(
            flag,
            type=parse_bool if isinstance(field.default, bool) else type(field.default),
            default=getattr(defaults, field.name),
            help=f"(env {ENV_PREFIX}{field.name.upper()}; default %(default)s)",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 <= args.metrics_port < 65536:
        parser.error("--metrics-port must be 0..65535")
    config = OperatorConfig(**{field.name: getattr(args, field.name) for field in fields(OperatorConfig)})
    # The handlers module reads its settings from the environment, like under `kopf run`.
    os.environ.update(config.to_env())
    # Client libraries stay at WARNING even when debugging: their DEBUG output carries request
    # headers (signatures, bearer tokens) that must not reach logs.
    configure_logging("razorfs-operator", logging.DEBUG if args.verbose else logging.INFO, args.log_format)
    # A kubeconfig that skips TLS verification makes urllib3 warn on every request (a line on
    # stderr per API call); once says it just as well.
    warnings.filterwarnings("once", category=urllib3.exceptions.InsecureRequestWarning)
    import kopf

    importlib.import_module("razorfs_operator.handlers")
    if args.metrics_port:
        from .metrics import serve_metrics

        serve_metrics(args.metrics_port)
    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness or None,
        standalone=not args.peering,
        peering_name=args.peering or None,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
