"""Search through real HTTP at scale: the app (auth + audit) beside a minimal FastAPI endpoint.

Runs, one after another in the same invocation, against uvicorn on 127.0.0.1 with `wrk`
(16 connections by default):
  1. ceiling  - bench/ceiling.py, a FastAPI endpoint that only parses JSON and answers;
  2. app      - POST /api/v1/children/search with a Bearer token (JWT validation, grant check,
                policy, purpose, rate limiter) and the audit append, on the given database;
  3. baseline - with --baseline DIR, the app of another checkout (an earlier commit), the same way;
  4. dev      - the same app in development mode with the X-Dev-Actor header (no token or grant
                checks), to show what auth costs.
Each server gets --warmup seconds of the same load, unmeasured, before its measured run.

wrk keeps every connection busy (a closed loop): it measures the most a server can do, and at
that point the latency is set by the number of clients, not by the server (Little's law: 16
waiting clients at X searches/s wait 16/X s on average). With --rate R each server is also
measured the other way, as latency targets are meant: searches arrive at a fixed R a second over
the same connections whether or not earlier ones have been answered (an open loop), and each
search's latency counts from when it was due, so time spent queued behind a slow answer is
counted rather than hidden (no "coordinated omission").
Needs a seeded database with a built index: `childindex seed --children N` then `childindex reindex`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cores import (  # noqa: E402
    cores_used,
    print_cores,
    start_noise,
    stop_noise,
    weighted,
    weighted_here,
)
from bench.paced import at_rate  # noqa: E402

LUA = """
local bodies = {}
local i = 0
for line in io.lines("%(queries)s") do bodies[#bodies + 1] = line end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%(headers)s
request = function()
  i = (i %% #bodies) + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sample_queries(engine: sa.Engine, n: int, seed: int) -> list[dict[str, str]]:
    """Realistic searches for children that exist: given + family + date of birth, some misspelt."""
    rng = random.Random(seed)
    with engine.connect() as conn:
        ids = (
            conn.execute(sa.text("SELECT id FROM child WHERE status='active' AND date_of_birth IS NOT NULL"))
            .scalars()
            .all()
        )
        rows = []
        for child_id in rng.sample(list(ids), min(n, len(ids))):
            row = conn.execute(
                sa.text(
                    "SELECT n.given, n.family, c.date_of_birth FROM child c "
                    "JOIN child_name n ON n.child_id = c.id WHERE c.id = :id AND n.use = 'official'"
                ),
                {"id": child_id},
            ).first()
            if row is not None:
                rows.append(row)
    queries = []
    for given, family, dob in rows:
        dob = str(dob)[:10]
        if rng.random() < 0.3 and len(family) > 4:  # a typo in the family name
            k = rng.randrange(1, len(family) - 1)
            family = family[:k] + family[k + 1] + family[k] + family[k + 2 :]
        queries.append({"given": given, "family": family, "birth_date": dob})
    return queries


def measure(
    url: str,
    queries: Path,
    headers: dict[str, str],
    *,
    duration: int,
    connections: int,
    warmup: int,
    server: int | None = None,
) -> dict[str, float]:
    """Steady state: `warmup` seconds of the same load first (caches, page cache, lazily built
    statements), unmeasured, then the measured run. With `server` (the server's process id), also
    where the machine's CPU went meanwhile, in cores: the server's processes (in all, and each one
    using any: the workers, the node's audit writer, the supervisor), wrk, and the whole machine."""
    if warmup > 0:
        wrk(url, queries, headers, duration=warmup, connections=connections)
    if server is None:
        return wrk(url, queries, headers, duration=duration, connections=connections)
    result: dict[str, Any] = {}
    with cores_used(server, result):
        result.update(wrk(url, queries, headers, duration=duration, connections=connections))
    return result


def wrk(
    url: str, queries: Path, headers: dict[str, str], *, duration: int, connections: int
) -> dict[str, float]:
    """Run wrk with the given headers and return throughput and latency percentiles (ms)."""
    header_lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA % {"queries": queries, "headers": header_lines})
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "1",
            "-c",
            str(connections),
            "-d",
            f"{duration}s",
            "--timeout",
            "10s",
            "-s",
            script.name,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", out)
    if not m:
        raise RuntimeError(out)
    reqs, dur_us, p50, p95, p99, status_errors, socket_errors = (int(x) for x in m.groups())
    return {
        "rps": reqs / (dur_us / 1e6),
        "p50": p50 / 1000,
        "p95": p95 / 1000,
        "p99": p99 / 1000,
        "requests": reqs,
        "non_2xx": status_errors,
        "socket_errors": socket_errors,
    }


def serve(cmd: list[str], env: dict[str, str], port: int, *, cwd: Path = ROOT) -> subprocess.Popen[bytes]:
    """Start a server (from the checkout at `cwd`) and wait until it answers."""
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.time() + 600
    ready_in_a_row = 0  # with several workers, each must have loaded its copy of the index
    while time.time() < deadline:
        try:
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code in (200, 404)
            ready_in_a_row = ready_in_a_row + 1 if ready else 0
            if ready_in_a_row >= 30:
                return proc
            time.sleep(0.02 if ready else 0.5)
        except httpx.HTTPError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "server died") from None
            time.sleep(0.5)
    raise RuntimeError("server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server and its workers."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def mint_token(database_url: str, env: dict[str, str], cwd: Path | None = None) -> str:
    """A practitioner's grant and a signed access token, made the way the app makes them (with `cwd`,
    by that checkout's own code, in a process of its own)."""
    if cwd is not None:
        code = (  # the key files first, by that checkout's code (from before or after issue #17's move)
            "import sys, bench.search_http as b\n"
            "try:\n    from childindex.keys import install_when_needed\n"
            "    from childindex.settings import Settings\n"
            "except ImportError:\n    from directory.keys import install_when_needed; "
            "from directory.settings import Settings\n"
            "install_when_needed(Settings)\n"
            f"print(b.mint_token({database_url!r}, {{}}), file=sys.stdout)"
        )
        command = [sys.executable, "-c", code]
        done = subprocess.run(command, cwd=cwd.resolve(), env=env, capture_output=True, text=True, check=True)
        return done.stdout.strip().splitlines()[-1]
    os.environ.update({k: v for k, v in env.items() if k.startswith("CHILDINDEX_")})
    from auth.config import AuthConfig
    from auth.errors import AuthRefused
    from auth.grants import ROLE_SCOPES, current_grant
    from auth.keys import KeyStore
    from auth.models import SubjectKind
    from auth.tokens import issue_access_token
    from childindex.settings import Settings
    from directory.db import make_engine, unit_of_work
    from directory.models import Role
    from tests.fixtures.auth_builders import make_grant

    settings = Settings()
    engine = make_engine(database_url)
    cfg = AuthConfig.from_settings(settings)
    keys = KeyStore(engine, alg=cfg.signing_alg, max_age_days=cfg.signing_key_max_age_days)
    with unit_of_work(engine) as s:
        try:  # one grant, made on the first run and reused after, as a real practitioner has
            current_grant(s, subject="bench.practitioner", kind=SubjectKind.USER, cfg=cfg)
        except AuthRefused:
            make_grant(s, "bench.practitioner", role=Role.PRACTITIONER)
    token, _ = issue_access_token(
        keys,
        cfg,
        subject="bench.practitioner",
        subject_kind=SubjectKind.USER,
        client_id="bench",
        scope=" ".join(ROLE_SCOPES[Role.PRACTITIONER]),
    )
    return token


def main() -> None:
    """Run the three servers one after another and print a table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default="sqlite:///var/bench-1m.db")
    ap.add_argument("--backend", default="embedded", choices=["embedded", "elasticsearch"])
    ap.add_argument("--elasticsearch-url", default=None)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5, help="seconds of unmeasured load first")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (e.g. a git worktree of an earlier commit): its app is measured too, "
        "the same way and in the same run",
    )
    ap.add_argument(
        "--baseline-database-url",
        help="the baseline's own copy of the database (default: --database-url), for a baseline whose "
        "schema or stored secrets this code has moved on from",
    )
    ap.add_argument(
        "--baseline-first",
        action="store_true",
        help="measure the baseline before the app (runs differ with their place: alternate it)",
    )
    ap.add_argument("--skip", nargs="*", default=[], choices=["ceiling", "app", "dev"])
    ap.add_argument(
        "--rate",
        type=float,
        nargs="*",
        default=[],
        help="also measure each server with searches arriving at this fixed rate a second (an open "
        "loop over the same connections, latency from each search's due time), and the server's CPU "
        "per search meanwhile; several rates are measured in turn on the same server",
    )
    ap.add_argument(
        "--noise",
        type=int,
        default=0,
        help="run a CPU-bound neighbour on this many cores throughout (stress-ng --cpu N, else Python "
        "busy loops): the noisy-neighbour run",
    )
    ap.add_argument(
        "--server-weight",
        type=int,
        default=0,
        help="start each server in a cgroup of its own with this CPU weight (systemd's CPUWeight= scale; "
        "every other process has 100), as deploy/systemd/childindex.service runs it; needs root",
    )
    ap.add_argument(
        "--client-weight",
        type=int,
        nargs="*",
        default=[0],
        help="measure each app with the load generator (this process and its wrk) in a cgroup of its "
        "own with this CPU weight (0: as every process, 100); several values are measured in turn on "
        "the same server, labelled. Beside a neighbour, a high weight takes the clients, which in "
        "production run on other machines, out of its contest with the server; needs root",
    )
    ap.add_argument(
        "--serve",
        action="store_true",
        help="start the apps (this one, --old-writer, --baseline) with `childindex serve --workers N`, "
        "as production runs them, rather than uvicorn directly: the node's shared audit writer runs "
        "only so (its supervisor starts it)",
    )
    ap.add_argument(
        "--realtime",
        type=int,
        default=0,
        metavar="PRIORITY",
        help="also measure this checkout with its server under the real-time round-robin policy at this "
        "priority (`chrt --rr`, as systemd's CPUSchedulingPolicy=rr with CPUSchedulingPriority=): its "
        "workers take a core from a CPU-bound neighbour the moment they wake; needs root",
    )
    ap.add_argument(
        "--old-writer",
        action="store_true",
        help="also measure this checkout with each worker committing its own audit events "
        "(CHILDINDEX_AUDIT_NODE_WRITER=false), as before the node's shared writer",
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure the apps (this one, --old-writer, --baseline) this many times, interleaved, "
        "each round in a rotated order",
    )
    args = ap.parse_args()
    # Key files from CHILDINDEX_AUDIT_KEY_FILE / _SECRETS_KEY_FILE (bench/run.sh sets them).
    from childindex.keys import install_when_needed
    from childindex.settings import Settings

    install_when_needed(Settings)
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")

    from directory.db import make_engine

    engine = make_engine(args.database_url)
    queries = sample_queries(engine, args.queries, seed=7)
    qfile = Path(tempfile.mkdtemp()) / "queries.jsonl"
    qfile.write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    with engine.connect() as conn:
        children = conn.execute(sa.text("SELECT count(*) FROM child")).scalar_one()

    base_env = dict(os.environ)
    base_env.update(
        {
            "CHILDINDEX_DATABASE_URL": args.database_url,
            "CHILDINDEX_SEARCH_BACKEND": args.backend,
            "CHILDINDEX_SEARCH_RATE_PER_MINUTE": "100000000",  # one bench subject sends everything
            "CHILDINDEX_TRAWL_DISTINCT_CHILDREN": "100000000",
            "CHILDINDEX_SECRET_KEY": "bench",
            "CHILDINDEX_ACCESS_TOKEN_MINUTES": "60",
            "CHILDINDEX_LOG_LEVEL": "warning",
        }
    )
    if args.elasticsearch_url:
        base_env["CHILDINDEX_ELASTICSEARCH_URL"] = args.elasticsearch_url
    load_before = os.getloadavg()
    results: dict[str, dict[str, float]] = {}
    paced: dict[float, dict[str, dict[str, float]]] = {rate: {} for rate in args.rate}
    uvicorn = [
        sys.executable,
        "-m",
        "uvicorn",
        "--log-level",
        "warning",
        "--no-access-log",
        "--workers",
        str(args.workers),
    ]

    childindex_serve = [sys.executable, "-c", "from childindex.cli import main; main()", "serve"]

    def run(
        name: str,
        app: list[str],
        env: dict[str, str],
        headers: dict[str, str],
        cwd: Path = ROOT,
        realtime: int = 0,
    ) -> None:
        """Serve one app, measure it, stop it."""
        port = free_port()
        command = [*uvicorn, "--port", str(port), *app]
        if args.serve and app[0] == "--factory":  # the app (not the ceiling), as production runs it
            command = [*childindex_serve, "--workers", str(args.workers), "--port", str(port)]
        if realtime:  # (its workers and the node's writer inherit the policy)
            command = ["chrt", "--rr", str(realtime), *command]
        ungroup = None
        if args.server_weight and not realtime:  # (a real-time task stays in the root group: the
            # kernel gives a new group no real-time time; and it runs before every weighted task anyway)
            command, ungroup = weighted(command, args.server_weight)
        proc = serve(command, env, port, cwd=cwd)
        url = f"http://127.0.0.1:{port}/api/v1/children/search"
        try:
            for weight in args.client_weight if app[0] == "--factory" else [0]:
                label = f"{name}, clients at {weight}" if len(args.client_weight) > 1 else name
                with weighted_here(weight) if weight else contextlib.nullcontext():
                    results[label] = measure(
                        url,
                        qfile,
                        headers,
                        duration=args.duration,
                        connections=args.connections,
                        warmup=args.warmup,
                        server=proc.pid,
                    )
                    for rate, measured in paced.items():
                        measured[label] = {}
                        with cores_used(proc.pid, measured[label]):  # (the load generator: this process)
                            load = {"rate": rate, "duration": args.duration, "connections": args.connections}
                            measured[label].update(asyncio.run(at_rate(url, qfile, headers, **load)))
        finally:
            stop(proc)
            if ungroup is not None:
                ungroup()

    noise, noise_name = start_noise(args.noise)
    if "ceiling" not in args.skip:
        run("ceiling (minimal FastAPI)", ["bench.ceiling:app"], base_env, {})
    factory = ["--factory", "childindex.app:create_app"]
    # A checkout from before the composition root moved out of the domain package (issue #17).
    old_factory = (
        factory
        if (args.baseline is None or (args.baseline / "childindex").is_dir())
        else [
            "--factory",
            "directory.app:create_app",
        ]
    )
    production = {**base_env, "CHILDINDEX_ENVIRONMENT": "production"}
    purpose = {"X-Purpose-Of-Use": "considering-caf"}

    suffix = ""  # " #2" and on, for the rounds after the first

    def app_run() -> None:
        if "app" not in args.skip:
            bearer = {"Authorization": f"Bearer {mint_token(args.database_url, production)}", **purpose}
            run(f"app: search + auth + audit{suffix}", factory, production, bearer)

    def realtime_run() -> None:
        if args.realtime:
            bearer = {"Authorization": f"Bearer {mint_token(args.database_url, production)}", **purpose}
            label = f"app, real-time (SCHED_RR {args.realtime}){suffix}"
            run(label, factory, production, bearer, realtime=args.realtime)

    def old_writer_run() -> None:
        if args.old_writer:
            own = {**production, "CHILDINDEX_AUDIT_NODE_WRITER": "false"}
            bearer = {"Authorization": f"Bearer {mint_token(args.database_url, own)}", **purpose}
            run(f"app, a writer per worker{suffix}", factory, own, bearer)

    def baseline_run() -> None:
        if args.baseline is not None:
            old_url = args.baseline_database_url or args.database_url
            old_env = {**production, "CHILDINDEX_DATABASE_URL": old_url}
            token = mint_token(old_url, old_env, cwd=args.baseline)
            bearer = {"Authorization": f"Bearer {token}", **purpose}
            run(
                f"baseline app ({args.baseline.name}){suffix}",
                old_factory,
                old_env,
                bearer,
                cwd=args.baseline.resolve(),
            )

    try:
        order = (
            [baseline_run, app_run, old_writer_run, realtime_run]
            if args.baseline_first
            else [app_run, baseline_run, old_writer_run, realtime_run]
        )
        wanted = {
            baseline_run: args.baseline is not None,
            old_writer_run: args.old_writer,
            realtime_run: bool(args.realtime),
        }
        order = [one for one in order if wanted.get(one, True)]
        for round_ in range(args.rounds):
            suffix = f" #{round_ + 1}" if args.rounds > 1 else ""
            turn = round_ % len(order)
            for one in order[turn:] + order[:turn]:
                one()
        if "dev" not in args.skip:
            development = {**base_env, "CHILDINDEX_ENVIRONMENT": "development"}
            dev_actor = {"X-Dev-Actor": "subject=bench; role=practitioner", **purpose}
            run("app without token/grant checks (dev header)", factory, development, dev_actor)
    finally:
        stop_noise(noise)  # (started before the ceiling: every server runs beside it)

    print(
        f"\nchildren in database: {children:,}; backend: {args.backend}; {args.connections} connections; "
        f"{args.duration}s each after {args.warmup}s warm-up; {args.workers} uvicorn worker(s); "
        f"{os.cpu_count()} cores; CPU-bound neighbour: {noise_name}; the servers' CPU weight: "
        f"{args.server_weight or 'as every process (100)'}; the load generator's: "
        f"{', '.join(str(w or 'as every process (100)') for w in args.client_weight)}; load average before: "
        f"{load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}"
    )
    print(f"{'server':48} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")

    def row(name: str, r: dict[str, float], failed: float) -> None:
        print(f"{name:48} {r['rps']:8.1f} {r['p50']:8.2f} {r['p95']:8.2f} {r['p99']:8.2f} {int(failed):8d}")

    for name, r in results.items():
        row(name, r, r["non_2xx"])
    print_cores(results)
    for rate, measured in paced.items():
        print(f"\nsearches arriving at a fixed {rate:g}/s over the same {args.connections} connections")
        print(f"{'server':48} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'failed':>8}")
        for name, r in measured.items():
            row(name, r, r["non_2xx"] + r["socket_errors"])
        print_cores(measured, runs=f"the runs at {rate:g}/s")
    ceiling = results.get("ceiling (minimal FastAPI)")
    app = results.get("app: search + auth + audit")
    dev = results.get("app without token/grant checks (dev header)")
    if ceiling and app:
        print(f"app / ceiling throughput: {app['rps'] / ceiling['rps']:.1%}")
    if app and dev:
        print(
            f"auth cost: throughput with/without auth {app['rps'] / dev['rps']:.1%}; "
            f"p50 +{app['p50'] - dev['p50']:.2f} ms"
        )


if __name__ == "__main__":
    main()
