"""The metrics' multiprocess directory, apart from prometheus-client: `serve` makes it before
anything imports the client, which chooses at import whether a process keeps its metrics in memory
or in files there (so the supervisor's own, its audit writer's, are summed with the workers')."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess() -> Path:
    """In the supervisor, before the workers start and before prometheus-client is imported: a
    fresh, empty directory for every process's files, named in the environment the workers inherit."""
    folder = Path(tempfile.mkdtemp(prefix="childindex-metrics-"))
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder


def end_multiprocess(folder: Path) -> None:
    """In the supervisor, once the workers are gone."""
    shutil.rmtree(folder, ignore_errors=True)
    os.environ.pop(MULTIPROC_ENV, None)
