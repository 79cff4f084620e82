"""How the three programs (razorfs, razorfs-node, razorfs-operator) log: to stderr, as text or,
with `--log-format json`, one JSON object a line with stable field names:

    time, level, logger, message, program   always
    node, volume                            when the process serves one (static for a daemon)
    op, errno, duration                     when the record carries them (`extra=` of a log call)

Values of the secrets a process holds in its environment (AWS secret key, session token, the
NodeAdmin token) are replaced by *** in every record, whatever the format. The operator imports
this module too (it is not part of either side's stack)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

LOG_FORMATS = ("text", "json")
LOG_FORMAT_ENV = "RAZORFS_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The fields a record may carry through `extra=`; named here once for every caller.
FIELD_VOLUME = "volume"
FIELD_NODE = "node"
FIELD_OP = "op"
FIELD_ERRNO = "errno"
FIELD_DURATION = "duration"  # seconds, a float
SECRET_ENVIRONMENT = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "RAZORFS_ADMIN_TOKEN")
REDACTED = "***"
# Client libraries whose DEBUG output carries request headers (signatures, bearer tokens).
NOISY_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer", "kubernetes")


def add_log_format_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=os.environ.get(LOG_FORMAT_ENV) if os.environ.get(LOG_FORMAT_ENV) in LOG_FORMATS else "text",
        help=f"text, or json: one object a line (time, level, logger, message, program, node, volume, op, "
        f"errno, duration); default: env {LOG_FORMAT_ENV} or text",
    )


class SecretRedactor(logging.Filter):
    """Replaces known secret values in a record's message and arguments with ***."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        # Short values would redact ordinary words; real keys and tokens are long.
        self.secrets = [s for s in secrets if len(s) >= 8]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, REDACTED)
            record.msg, record.args = message, None
        return True


def json_formatter(program: str, static: dict[str, Any]) -> logging.Formatter:
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        static_fields={"program": program, **{k: v for k, v in static.items() if v}},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )


def configure_logging(program: str, level: str | int = "INFO", log_format: str = "text", **static: str | None) -> None:
    """Root logging to stderr in `log_format`; `static` fields (node=, volume=) go on every JSON
    line. Replaces any handler a previous call installed."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter(program, static) if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(SecretRedactor([os.environ.get(name, "") for name in SECRET_ENVIRONMENT]))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def add_static_field(name: str, value: str) -> None:
    """Adds `name` to every JSON line from now on (a daemon learns its volume after start)."""
    for handler in logging.getLogger().handlers:
        formatter = handler.formatter
        if isinstance(formatter, JsonFormatter) and value:
            formatter.static_fields[name] = value
