"""Structured logging: one JSON object a line for machines (production: `serve` and `worker` when not
at a terminal), a readable line for people (a terminal, and always in the demo).

Every record carries the context bound with `bind_context` (a contextvar, so it follows asyncio tasks:
bind `request_id` in the HTTP middleware, `run_id` in a sync job) and any `extra=` fields. Values
under keys that look secret (token, password, credentials, ...) are masked wherever they appear in
the extras, nested dicts and lists included, before any handler formats them.

    configure_logging()                     # once, at start-up
    with bind_context(run_id=run.id):
        log.info("page fetched", extra={"count": 50})
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TextIO

MASK = "***"

# Keys every record has, so that whatever else is on a record came from `extra=`.
_RECORD_KEYS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_CONTEXT_KEYS = ("request_id", "run_id")
_SECRET_KEY = re.compile(
    r"token|secret|passw(or)?d|authorization|credential|api_?key|consumer_key|private_key|cookie",
    re.IGNORECASE,
)

_NOTHING_BOUND: Mapping[str, Any] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("log_context", default=_NOTHING_BOUND)


@contextlib.contextmanager
def bind_context(**values: Any) -> Iterator[None]:
    """Adds these fields to every record logged inside the block (and in tasks it starts)."""
    token = _context.set({**_context.get(), **values})
    try:
        yield
    finally:
        _context.reset(token)


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key.replace("-", "_")))


def redact(value: Any) -> Any:
    """A copy of `value` with every value under a secret-looking key replaced by a mask."""
    if isinstance(value, Mapping):
        return {k: MASK if is_secret_key(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(item) for item in value]
    return value


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a record got from `extra=` and the bound context."""
    return {key: value for key, value in record.__dict__.items() if key not in _RECORD_KEYS}


class ContextFilter(logging.Filter):
    """Puts the bound context on each record; `request_id` and `run_id` are always there (or None)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key in _CONTEXT_KEYS:
            record.__dict__.setdefault(key, None)
        for key, value in _context.get().items():
            if key not in _RECORD_KEYS:
                record.__dict__[key] = value
        return True


class RedactFilter(logging.Filter):
    """Masks values under secret-looking keys in a record's extra fields (copies; never mutates them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in extra_fields(record).items():
            if is_secret_key(key):
                record.__dict__[key] = MASK
            elif isinstance(value, Mapping | list | tuple | set | frozenset):
                record.__dict__[key] = redact(value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, msg, request_id, run_id, the extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(extra_fields(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """`12:00:00.123 INFO  gateway.sync: message  run_id=... count=50` for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s.%(msecs)03d %(levelname)-5s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {k: v for k, v in extra_fields(record).items() if v is not None}
        if not fields:
            return line
        head, sep, tail = line.partition("\n")  # keep a traceback below the fields
        pairs = " ".join(f"{key}={value}" for key, value in fields.items())
        return f"{head}  {pairs}{sep}{tail}"


class _GatewayHandler(logging.StreamHandler[TextIO]):
    """The handler configure_logging installs (recognised so a second call replaces it)."""

    pinned = False


def configure_logging(
    level: int | str = "INFO", json_logs: bool | None = None, *, stream: TextIO | None = None, pin: bool = False
) -> logging.Handler:
    """Sends every logger's records to `stream` (stderr): JSON lines unless it is a terminal.

    Calling it again replaces the handler it installed before; handlers others added stay. A process
    that chose its logging for a person (the demo: readable lines, quiet) pins it with `pin=True`;
    later calls without `pin` (a worker starting up inside that process) then leave it as it is.
    """
    root = logging.getLogger()
    if not pin:
        for current in root.handlers:
            if isinstance(current, _GatewayHandler) and current.pinned:
                return current
    stream = sys.stderr if stream is None else stream
    if json_logs is None:
        json_logs = not stream.isatty()
    handler = _GatewayHandler(stream)
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactFilter())
    handler.setFormatter(JsonFormatter() if json_logs else ConsoleFormatter())
    handler.pinned = pin
    for old in [h for h in root.handlers if isinstance(h, _GatewayHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler
