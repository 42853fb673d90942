"""JSON-lines logging to stderr, the format the Node side of procgrpc parses.

Every record is one line: ``{"time": <epoch ms>, "level": ..., "msg": ...,
"worker_id": ..., "pid": ..., <extra fields>}``. stdout is never touched: it
belongs to the user's code (and the pool may not even read it).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import traceback
from typing import Any, Dict, Optional

from .. import _call_info

__all__ = ["Logger", "get_logger", "configure"]

_LEVELS: Dict[str, int] = {"debug": 10, "info": 20, "warn": 30, "error": 40, "silent": 100}
_ALIASES = {"warning": "warn", "err": "error", "fatal": "error", "critical": "error"}

# One lock for the whole process so lines written from the event loop and from
# servicer threads never interleave inside a line.
_write_lock = threading.Lock()
_state: Dict[str, Any] = {"threshold": _LEVELS["info"], "worker_id": None}


def _parse_level(value: Optional[str]) -> int:
    name = (value or "info").strip().lower()
    name = _ALIASES.get(name, name)
    return _LEVELS.get(name, _LEVELS["info"])


def _emit(level: str, msg: str, fields: Dict[str, Any]) -> None:
    record: Dict[str, Any] = {
        "time": int(time.time() * 1000),
        "level": level,
        "msg": msg,
        "worker_id": _state["worker_id"],
        "pid": os.getpid(),
    }
    call = _call_info.current_call()
    if call is not None:
        # Lines written while serving a call carry its request id (and trace id when traced).
        for key, value in call.log_fields().items():
            fields.setdefault(key, value)
    for key, value in fields.items():
        if key not in record:
            record[key] = value
    # default=str: a log call must never fail because a field is not JSON-able.
    line = json.dumps(record, default=str, ensure_ascii=False) + "\n"
    stream = sys.stderr
    if stream is None:  # pythonw / closed stderr: nowhere to log.
        return
    with _write_lock:
        try:
            stream.write(line)
            stream.flush()
        except (OSError, ValueError):
            # A closed or broken stderr (parent gone) must not take the worker
            # down or spin; the line is simply lost.
            pass


class Logger:
    """Structured logger writing procgrpc JSON lines to stderr.

    Extra keyword arguments become fields of the record, e.g.
    ``get_logger().info("cache warmed", entries=120)``.
    """

    __slots__ = ("_fields",)

    def __init__(self, **fields: Any) -> None:
        self._fields = fields

    def bind(self, **fields: Any) -> "Logger":
        """Return a logger that adds ``fields`` to every record."""
        merged = dict(self._fields)
        merged.update(fields)
        return Logger(**merged)

    def is_enabled(self, level: str) -> bool:
        """True when records of ``level`` ("debug", "info", "warn", "error") are written."""
        return _LEVELS.get(level, 0) >= int(_state["threshold"])

    def log(self, level: str, msg: str, exc_info: bool = False, **fields: Any) -> None:
        """Write one record at ``level``; ``exc_info=True`` adds the current traceback."""
        if not self.is_enabled(level):
            return
        merged = dict(self._fields)
        merged.update(fields)
        if exc_info and sys.exc_info()[0] is not None:
            merged["traceback"] = traceback.format_exc()
        _emit(level, msg, merged)

    def debug(self, msg: str, **fields: Any) -> None:
        """Log at debug level."""
        self.log("debug", msg, **fields)

    def info(self, msg: str, **fields: Any) -> None:
        """Log at info level."""
        self.log("info", msg, **fields)

    def warn(self, msg: str, **fields: Any) -> None:
        """Log at warn level."""
        self.log("warn", msg, **fields)

    warning = warn

    def error(self, msg: str, exc_info: bool = False, **fields: Any) -> None:
        """Log at error level; ``exc_info=True`` adds the current traceback as ``traceback``."""
        self.log("error", msg, exc_info=exc_info, **fields)


class _JsonHandler(logging.Handler):
    """Routes stdlib ``logging`` records (grpc's own, the user's) into the same JSON lines."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.levelno >= logging.ERROR:
                level = "error"
            elif record.levelno >= logging.WARNING:
                level = "warn"
            elif record.levelno >= logging.INFO:
                level = "info"
            else:
                level = "debug"
            fields: Dict[str, Any] = {"logger": record.name}
            if record.exc_info:
                fields["traceback"] = "".join(traceback.format_exception(*record.exc_info))
            _emit(level, record.getMessage(), fields)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


_root_logger = Logger()


def get_logger(**fields: Any) -> Logger:
    """Return a logger in the worker's JSON format; ``fields`` are added to every record."""
    return _root_logger.bind(**fields) if fields else _root_logger


def configure(level: Optional[str] = None, worker_id: Optional[str] = None) -> None:
    """Set the level (default env ``PROCGRPC_LOG_LEVEL`` or info) and worker id, and
    route the stdlib ``logging`` root logger to the JSON format."""
    _state["threshold"] = _parse_level(level if level is not None else os.environ.get("PROCGRPC_LOG_LEVEL"))
    _state["worker_id"] = worker_id if worker_id is not None else os.environ.get("PROCGRPC_WORKER_ID")
    root = logging.getLogger()
    if not any(isinstance(h, _JsonHandler) for h in root.handlers):
        root.addHandler(_JsonHandler())
    root.setLevel(max(10, min(40, int(_state["threshold"]))))
