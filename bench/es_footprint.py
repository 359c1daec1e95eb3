"""What the Elasticsearch node holds after a rebuild: documents, store size, heap and resident memory.

uv run python bench/es_footprint.py --url http://127.0.0.1:9290
"""

from __future__ import annotations

import argparse
from pathlib import Path

from search.elasticsearch import DEFAULT_ALIAS
from search.es_client import Access, make_client, read_secret


def main() -> None:
    """Print one line per figure."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", required=True)
    ap.add_argument("--ca-file")
    ap.add_argument("--api-key-file")
    args = ap.parse_args()
    key = read_secret(args.api_key_file, "--api-key-file") if args.api_key_file else None
    es = make_client(args.url, Access(ca_file=args.ca_file, api_key=key))
    stats = es.indices.stats(index=DEFAULT_ALIAS, metric=["docs", "store", "segments"])["_all"]["primaries"]
    node = next(iter(es.nodes.stats(metric=["jvm"])["nodes"].values()))
    pid = next(iter(es.nodes.info(metric=["process"])["nodes"].values()))["process"]["id"]
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines()
    )
    mib = 1024 * 1024
    print(f"documents:          {stats['docs']['count']:,}")
    print(f"index on disk:      {stats['store']['size_in_bytes'] / mib:,.0f} MiB")
    print(f"segments memory:    {stats['segments'].get('memory_in_bytes', 0) / mib:,.1f} MiB")
    print(
        f"JVM heap used/max:  {node['jvm']['mem']['heap_used_in_bytes'] / mib:,.0f} / "
        f"{node['jvm']['mem']['heap_max_in_bytes'] / mib:,.0f} MiB"
    )
    print(f"node resident now:  {status['VmRSS'].strip()} (peak {status['VmHWM'].strip()})")


if __name__ == "__main__":
    main()
