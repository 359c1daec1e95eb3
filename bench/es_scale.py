"""One measured point beyond a million: N synthetic children straight into an Elasticsearch node.

    python bench/es_scale.py --url http://127.0.0.1:9290 --children 5000000 [--rate 100]

Streams search.quality's synthetic population (generated in chunks of --chunk, each with a seed of
its own, so memory stays flat) into a new index behind its own alias with the backend's `rebuild`
(the bulk path `childindex reindex` takes), then reports the indexing time, the node's documents,
disk, heap and resident memory, and searches (the matching engine: the node's candidates, scored
in Python) for children of the first chunk with one corruption each: at a fixed --rate a second
(latency from each search's due time, over --threads threads) and flat out (--threads at once).
The directory is not involved. The index is deleted afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.paced import percentiles_ms  # noqa: E402
from search.elasticsearch import ElasticsearchBackend  # noqa: E402
from search.es_client import Access, read_secret  # noqa: E402
from search.matching import MatchingEngine  # noqa: E402
from search.port import PersonFields, SearchQuery  # noqa: E402
from search.quality import generate_cases, generate_population  # noqa: E402

MIB = 1024 * 1024


def population(children: int, chunk: int, first: list[PersonFields]) -> Iterator[PersonFields]:
    """`children` records, chunk by chunk; the first chunk is also kept in `first`."""
    done = 0
    for part in range((children + chunk - 1) // chunk):
        people = generate_population(min(chunk, children - done), seed=1000 + part)
        if part == 0:
            first.extend(people)
        done += len(people)
        yield from people


def node_memory(backend: ElasticsearchBackend) -> dict[str, str]:
    """Heap used/max, and VmRSS/VmHWM when the node runs on this machine."""
    node = next(iter(backend.client.nodes.stats(metric=["jvm"])["nodes"].values()))
    out = {
        "heap used / max": f"{node['jvm']['mem']['heap_used_in_bytes'] / MIB:,.0f} / "
        f"{node['jvm']['mem']['heap_max_in_bytes'] / MIB:,.0f} MiB"
    }
    pid = next(iter(backend.client.nodes.info(metric=["process"])["nodes"].values()))["process"]["id"]
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        fields = dict(line.split(":", 1) for line in status.read_text(encoding="ascii").splitlines())
        out["node resident (peak)"] = f"{fields['VmRSS'].strip()} ({fields['VmHWM'].strip()})"
    return out


def paced(engine: MatchingEngine, queries: list[SearchQuery], rate: float, threads: int) -> list[float]:
    """Latencies (s) of `queries` issued at `rate` a second, each from its due time."""
    start = time.perf_counter() + 0.1

    def one(i: int) -> float:
        due = start + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        engine.search(queries[i])
        return time.perf_counter() - due

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(len(queries))))


def flat_out(engine: MatchingEngine, queries: list[SearchQuery], threads: int) -> float:
    """Searches a second with `threads` searching at once."""
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(engine.search, queries))
    return len(queries) / (time.perf_counter() - started)


def main() -> None:
    """Index, measure, print."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--children", type=int, default=200_000)
    ap.add_argument("--chunk", type=int, default=100_000)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--searches", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--alias", default="childindex-scale")
    ap.add_argument("--ca-file")
    ap.add_argument("--api-key-file")
    ap.add_argument("--keep", action="store_true", help="keep the index afterwards")
    args = ap.parse_args()
    access = Access(
        ca_file=args.ca_file,
        api_key=read_secret(args.api_key_file, "--api-key-file") if args.api_key_file else None,
    )
    backend = ElasticsearchBackend.from_url(args.url, access=access, alias=args.alias, shards=args.shards)
    first: list[PersonFields] = []
    started = time.perf_counter()
    indexed = backend.rebuild(population(args.children, args.chunk, first))
    took = time.perf_counter() - started
    stats = backend.client.indices.stats(index=args.alias, metric=["docs", "store"])["_all"]["primaries"]
    figures = {
        "children indexed": f"{indexed:,}",
        "indexing (generate + bulk + refresh)": f"{took:,.0f} s ({indexed / took:,.0f} children/s)",
        "documents": f"{stats['docs']['count']:,}",
        "index on disk": f"{stats['store']['size_in_bytes'] / MIB:,.0f} MiB",
        **node_memory(backend),
    }
    queries = [c.query for c in generate_cases(first, args.searches, corruptions=1, seed=5)]
    engine = MatchingEngine(backend)
    flat_out(engine, queries[: min(200, len(queries))], args.threads)  # warm the node's caches
    latencies = paced(engine, queries, args.rate, args.threads)
    figures[f"search at {args.rate:g}/s p50 / p95 / p99"] = "{p50:.1f} / {p95:.1f} / {p99:.1f} ms".format(
        **percentiles_ms(latencies)
    )
    figures[f"search flat out ({args.threads} threads)"] = f"{flat_out(engine, queries, args.threads):,.0f}/s"
    figures.update({f"after searching: {k}": v for k, v in node_memory(backend).items()})
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:{width}}  {value}")
    if not args.keep:
        backend.client.indices.delete(index=f"{args.alias}-*", ignore_unavailable=True)


if __name__ == "__main__":
    main()
