"""The cores during a benchmark (Linux): where the CPU went (a process tree's CPU seconds and the
whole machine's, read from /proc), a CPU-bound neighbour to run beside a server, and the server's
CPU weight against it (a cgroup), for `bench/search_http.py` and `bench/audit_writer.py`."""

from __future__ import annotations

import atexit
import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def cores_used(server: int, result: dict[str, Any]) -> Iterator[None]:
    """Add to `result` where the machine's CPU went during the block, in cores (1.00 = one): the
    server's process tree (`cpu_server`, and each process using any: `cpu_processes`, e.g. the
    workers and the node's audit writer), the load generator (`cpu_load`: this process and the
    children it waited for meanwhile, wrk or its own client) and the whole machine (`cpu_machine`)."""
    tree, machine = process_tree_cpu(server), machine_cpu()
    load = _own_and_waited()
    started = time.monotonic()
    yield
    elapsed = time.monotonic() - started
    after = process_tree_cpu(server)
    used = sorted(((after[p] - tree.get(p, 0.0)) / elapsed for p in after), reverse=True)
    result["cpu_server"] = sum(used)
    result["cpu_processes"] = "+".join(f"{u:.2f}" for u in used if u >= 0.01)
    result["cpu_load"] = (_own_and_waited() - load) / elapsed
    result["cpu_machine"] = (machine_cpu() - machine) / elapsed


def _own_and_waited() -> float:
    """CPU seconds of this process and of the children it has waited for."""
    own, waited = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + waited.ru_utime + waited.ru_stime


def print_cores(results: Mapping[str, Mapping[str, Any]], *, runs: str = "the flat-out runs") -> None:
    """The table of `cores_used`'s figures, one row a server, with the server's CPU per request."""
    print(
        f"\nwhere the cores went in {runs} (1.00 = one core): the server in all, and each of its "
        "processes (workers, the node's audit writer); the load generator; the whole machine (the rest: "
        "the neighbour, if any); the server's CPU per request answered"
    )
    print(f"{'server':48} {'server':>8} {'load':>8} {'machine':>8} {'ms/req':>8}  each process")
    for name, r in results.items():
        if "cpu_server" in r:
            per = r["cpu_server"] / r["rps"] * 1000 if r.get("rps") else float("nan")
            cores = f"{r['cpu_server']:8.2f} {r['cpu_load']:8.2f} {r['cpu_machine']:8.2f} {per:8.2f}"
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


def start_noise(cpus: int) -> tuple[list[subprocess.Popen[bytes]], str]:
    """A CPU-bound neighbour on `cpus` cores for the whole run: `stress-ng --cpu N` when installed
    (apt-get install stress-ng), else N Python busy loops; and which it is."""
    if cpus <= 0:
        return [], "none"
    if shutil.which("stress-ng"):
        cmd = ["stress-ng", "--cpu", str(cpus), "--cpu-method", "matrixprod", "--quiet", "--timeout", "0"]
        quiet = subprocess.DEVNULL
        procs = [subprocess.Popen(cmd, stdout=quiet, stderr=quiet, start_new_session=True)]
        name = f"stress-ng --cpu {cpus}"
    else:
        loop = [sys.executable, "-c", "while True: pass"]
        procs = [subprocess.Popen(loop, start_new_session=True) for _ in range(cpus)]
        name = f"{cpus} Python busy loop(s) (stress-ng not installed)"
    atexit.register(stop_noise, procs)  # (however the run ends)
    return procs, name


def stop_noise(procs: list[subprocess.Popen[bytes]]) -> None:
    """Stop the neighbour (each in a session of its own)."""
    for proc in procs:
        if proc.poll() is not None:  # (stopped already: its group id may be another's now)
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


CGROUP_V2 = Path("/sys/fs/cgroup")
CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")


def weighted(command: list[str], weight: int) -> tuple[list[str], Callable[[], None]]:
    """`command` wrapped to start in a cgroup of its own with CPU weight `weight` (systemd's
    `CPUWeight=` scale: 1-10,000, every other process 100), and a function that removes the group
    once the command and its children have exited. Under contention the kernel shares the cores
    between groups in proportion to their weights, which is what deploy/systemd/childindex.service
    sets for the server. Needs root (or a delegated cgroup) and the CPU controller (v2 or v1)."""
    group, remove = _cpu_group(weight, "--server-weight")
    join = 'echo $$ > "$0" && exec "$@"'  # (the shell joins the group, then becomes the command)
    return ["sh", "-c", join, str(group / "cgroup.procs"), *command], remove


@contextmanager
def weighted_here(weight: int) -> Iterator[None]:
    """This process (the load generator: its own client, and wrk, which it starts) in a cgroup of
    its own with CPU weight `weight` for the block, then back where it was. On a machine of two
    cores the clients share them with the server and the neighbour; in production they are on other
    machines, and the neighbour competes with the server alone. Processes started meanwhile (wrk)
    start in the group; a server started by `weighted` moves to its own. Start the neighbour before
    the block, so it stays outside."""
    group, remove = _cpu_group(weight, "--client-weight")
    home = _own_group()
    (group / "cgroup.procs").write_text(str(os.getpid()))
    try:
        yield
    finally:
        (home / "cgroup.procs").write_text(str(os.getpid()))
        remove()


def _own_group() -> Path:
    """The cgroup this process's CPU controller puts it in (v2, else v1's cpu hierarchy)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        if number == "0" and (CGROUP_V2 / "cgroup.controllers").exists():
            return CGROUP_V2 / path.lstrip("/")
        if "cpu" in controllers.split(","):
            return CGROUP_V1_CPU / path.lstrip("/")
    sys.exit("no CPU cgroup for this process")


def _cpu_group(weight: int, option: str) -> tuple[Path, Callable[[], None]]:
    """A new cgroup with CPU weight `weight`, and a function that removes it once it is empty."""
    name = f"childindex-bench-{os.getpid()}-{time.monotonic_ns()}"
    controllers = CGROUP_V2 / "cgroup.controllers"
    if controllers.exists() and "cpu" in controllers.read_text().split():
        group, setting, value = CGROUP_V2 / name, "cpu.weight", str(weight)
    elif (CGROUP_V1_CPU / "cpu.shares").exists():
        group, setting, value = CGROUP_V1_CPU / name, "cpu.shares", str(max(2, weight * 1024 // 100))
    else:
        sys.exit(f"{option} needs the cgroup CPU controller (v2, or v1 at /sys/fs/cgroup/cpu)")
    try:
        group.mkdir()
        (group / setting).write_text(value)
    except OSError as exc:
        sys.exit(f"{option} could not make {group}: {exc} (run as root)")

    def remove() -> None:
        for _ in range(100):  # (the workers may outlive their supervisor by a moment)
            try:
                group.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)
        print(f"warning: {group} still holds processes; remove it by hand", file=sys.stderr)

    atexit.register(remove)
    return group, remove
