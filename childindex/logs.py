"""Log lines: one JSON object a line (the default, for a log shipper) or plain text (a terminal).

Each JSON line holds `time` (UTC, ISO 8601), `level`, `logger`, `message`, `request_id` (while a
request is answered), `node` (the host's name) and `pid`. uvicorn's own loggers go the same way
(`uvicorn_log_config`, handed to uvicorn, which applies it in every worker process).

Never child data: the service logs ids and codes, never a name, a date of birth or an address;
and since an exception's text may hold what a caller sent or a statement's parameters (SQLAlchemy
puts them in its messages), a JSON line carries an exception's type and where it was raised
(file, line, function of each frame), never its message or locals. uvicorn's access log, whose
lines hold the raw path and query string (a GET search's criteria), stays off; so do the HTTP
clients' INFO lines (each outbound request's URL).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

REQUEST_ID: ContextVar[str | None] = ContextVar("childindex_request_id", default=None)
_NODE = socket.gethostname()


class JsonFormatter(logging.Formatter):
    """One JSON object per record; exceptions by type and frames only."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "node": _NODE,
            "pid": record.process or os.getpid(),
        }
        request_id = REQUEST_ID.get()
        if request_id:
            out["request_id"] = request_id
        if record.exc_info and record.exc_info[0] is not None:
            kind, _, tb = record.exc_info
            out["exception"] = kind.__qualname__
            out["stack"] = [f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(tb)][-12:]
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Plain text for a person at a terminal (exceptions in full: not for production)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.request_id = REQUEST_ID.get() or "-"
        return super().format(record)


def formatter_for(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def uvicorn_log_config(log_format: str, level: str) -> dict[str, Any]:
    """A logging dictConfig for uvicorn (and everything else: the root logger) in `log_format`."""
    name = "childindex.logs.JsonFormatter" if log_format == "json" else "childindex.logs.TextFormatter"
    handler = {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": {"()": name}},
        "handlers": {"main": handler},
        "root": {"handlers": ["main"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
            # HTTP clients log each request's URL at INFO (a webhook's address, a node's): not ours to ship
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
            "elastic_transport": {"level": "WARNING"},
        },
    }
