"""Where the CPU went during a benchmark: a process tree's CPU seconds and the whole machine's,
read from /proc (Linux), for `bench/search_http.py`'s account of the cores in a flat-out run."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def cores_used(server: int, result: dict[str, Any]) -> Iterator[None]:
    """Add to `result` where the machine's CPU went during the block, in cores (1.00 = one): the
    server's process tree (`cpu_server`, and each process using any: `cpu_processes`, e.g. the
    workers and the node's audit writer), the children this process waited for meanwhile (wrk:
    `cpu_wrk`) and the whole machine (`cpu_machine`)."""
    tree, machine = process_tree_cpu(server), machine_cpu()
    waited = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    yield
    elapsed = time.monotonic() - started
    after, waited_after = process_tree_cpu(server), resource.getrusage(resource.RUSAGE_CHILDREN)
    used = sorted(((after[p] - tree.get(p, 0.0)) / elapsed for p in after), reverse=True)
    result["cpu_server"] = sum(used)
    result["cpu_processes"] = "+".join(f"{u:.2f}" for u in used if u >= 0.01)
    result["cpu_wrk"] = (
        waited_after.ru_utime + waited_after.ru_stime - waited.ru_utime - waited.ru_stime
    ) / elapsed
    result["cpu_machine"] = (machine_cpu() - machine) / elapsed


def print_cores(results: Mapping[str, Mapping[str, Any]]) -> None:
    """The table of `cores_used`'s figures, one row a server."""
    print(
        "\nwhere the cores went in the flat-out runs (1.00 = one core): the server in all, and each of its "
        "processes (workers, the node's audit writer); wrk; the whole machine (the rest: the neighbour, "
        "if any)"
    )
    print(f"{'server':48} {'server':>8} {'wrk':>8} {'machine':>8}  each process")
    for name, r in results.items():
        if "cpu_server" in r:
            cores = f"{r['cpu_server']:8.2f} {r['cpu_wrk']:8.2f} {r['cpu_machine']:8.2f}"
            print(f"{name:48} {cores}  {r['cpu_processes']}")


def process_tree_cpu(root: int) -> dict[int, float]:
    """CPU seconds (user and system) of a process and all its descendants, by process id."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        parent[pid] = int(fields[1])
        cpu[pid] = (int(fields[11]) + int(fields[12])) / tick
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, ppid in parent.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return {pid: cpu[pid] for pid in tree if pid in cpu}


def machine_cpu() -> float:
    """CPU seconds the whole machine has been busy (not idle or waiting), all cores together."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
