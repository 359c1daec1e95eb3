"""The node's shared audit writer for `serve --workers N` (directory/audit_socket.py, docs/audit.md).

The supervising process starts it before the workers and stops it after them, so that every event
a worker sent is written before the node exits; the workers find it through
CHILDINDEX_AUDIT_WRITER_SOCKET, in a directory of the supervisor's own (mode 0700).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

from sqlalchemy.engine import Engine

from childindex.settings import Settings
from directory import audit
from directory.audit_socket import WriterServer

log = logging.getLogger("childindex.audit")


def start(settings: Settings, engine: Engine) -> WriterServer | None:
    """Start the node's writer (unless CHILDINDEX_AUDIT_NODE_WRITER=false) and tell the workers."""
    if not settings.audit_node_writer:
        return None
    folder = tempfile.mkdtemp(prefix="childindex-audit-")  # (0700: only this user reaches the socket)
    path = os.path.join(folder, "writer.sock")
    server = audit.serve_writer(engine, path, linger=settings.audit_commit_linger_seconds)
    os.environ["CHILDINDEX_AUDIT_WRITER_SOCKET"] = server.path
    return server


def stop(server: WriterServer | None, timeout: float = 30.0) -> None:
    """Write every event queued, then stop the writer and remove its socket."""
    if server is None:
        return
    if not server.close(timeout):
        log.error("the audit writer stopped with events unwritten after %.0f s", timeout)
    shutil.rmtree(os.path.dirname(server.path), ignore_errors=True)
