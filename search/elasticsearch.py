"""The scale-out backend: blocking keys in an Elasticsearch index behind an alias.

The only module that imports the Elasticsearch client. The application owns the mapping
and settings; no analysis plugin is needed because every key is computed in Python
(search.blocking.blocking_keys) and stored as an exact keyword.

Each document keeps, beside its keys, the record as a compact JSON array (see `compact`) in the doc
values of a binary field `r`, and its day numbers of birth and expected delivery in two integer
fields `b` and `d`: a search is one `_search` that returns, for the best-ranked children, those
three and nothing else (no stored field is read); the day numbers are tested against the query
(`keep_birth`) first, and only the records that pass are decoded, as the resident embedded index
reads back only the candidates its day numbers keep.
The mapping carries a version (`_meta.childindex_mapping`): an index built by an older release is
detected (`outdated_reason`, /readyz) and searches refuse it with `IndexOutdated` until
`childindex reindex` builds a new one.

Reads and writes go through the alias `childindex-children`, which points at one concrete
index `childindex-children-<UTC timestamp>`. `rebuild` fills a new index and moves the
alias in one atomic `_aliases` call, so searches never see a half-built index.
"""

from __future__ import annotations

import asyncio
import json
from binascii import a2b_base64, b2a_base64
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from functools import partial
from typing import Any
from urllib.parse import quote

import anyio
from elasticsearch import ApiError, AsyncElasticsearch, Elasticsearch, NotFoundError, TransportError, helpers

from search.blocking import blocking_keys
from search.es_client import Access, make_async_client, make_client
from search.normalise import normalise_identifier
from search.port import BirthFilter, PersonFields, SearchUnavailable
from search.steps import await_steps, run_steps

MAPPING_VERSION = 4
"""Raised whenever the mapping or the compact record changes: an index of another version must be
rebuilt (`childindex reindex`). 1 (no `_meta`): the whole record as `person` in _source; 2: the
compact record as `p` in _source; 3: the compact record in doc values (`r`) and the tie-break `t`;
4: the day numbers `b` and `d` beside it, so a search decodes only the records they keep."""
DEFAULT_ALIAS = "childindex-children"
CHUNK_SIZE = 1000
"""Documents per bulk request."""
MERGE_TIMEOUT_SECONDS = 6 * 3600
"""How long `rebuild` waits for the new index to be merged into one segment (minutes at millions)."""
_FIELDS = frozenset({"r", "b", "d"})
"""The doc values every hit carries (an index of an older mapping lacks some: `IndexOutdated`)."""
_DOC_VALUES = [{"field": name} for name in sorted(_FIELDS)]
_HITS_PARAMS = {"filter_path": "hits.hits.sort,hits.hits.fields"}
"""Only each hit's sort values and doc values come back (no `_index`, `_id`, `_score`)."""
_JSON = {"accept": "application/json", "content-type": "application/json"}
_NO_RECORDS = "the index holds no compact records"


def _identifier_terms(rec: PersonFields) -> list[str]:
    return [f"{s}|{normalise_identifier(s, v)}" for s, v in rec.identifiers]


def index_mapping() -> dict[str, Any]:
    """The mapping of a children index: exact keywords to search, the compact record to return."""
    return {
        "dynamic": "strict",
        "_meta": {"childindex_mapping": MAPPING_VERSION},
        # _source keeps the child id only (for people looking at the index): a search never reads it.
        "_source": {"excludes": ["keys", "identifiers", "r", "t", "b", "d"]},
        "properties": {
            "child_id": {"type": "keyword"},
            # Only ever matched exactly, never sorted or aggregated: no doc values needed.
            "keys": {"type": "keyword", "doc_values": False},
            "identifiers": {"type": "keyword", "doc_values": False},
            # The compact record, returned from doc values, never searched (see `_hits`).
            "r": {"type": "binary", "doc_values": True},
            # The tie-break a search sorts on (see `tiebreak`): doc values only.
            "t": {"type": "long", "index": False},
            # Day numbers of birth and expected delivery (`date.toordinal`; 0: none), always present:
            # tested before a record is decoded (`could_match`). Doc values only.
            "b": {"type": "integer", "index": False},
            "d": {"type": "integer", "index": False},
        },
    }


class IndexOutdated(SearchUnavailable):
    """The alias points at an index this release cannot read: `childindex reindex` builds a new one."""


def tiebreak(child_id: str) -> int:
    """A signed 64-bit number that never orders two child ids against their string order: the id's
    first 8 bytes (UTF-8, whose byte order is code point order; padded with zero bytes), big-endian,
    less 2**63. Ids sharing their first 8 bytes get the same number."""
    return int.from_bytes(child_id.encode()[:8].ljust(8, b"\0"), "big") - 2**63


def compact(rec: PersonFields) -> list[Any]:
    """The record as a short JSON array: [child_id, given names, family names, day number of birth,
    day number of expected delivery (`date.toordinal`, or null), sex, postcodes, identifiers as
    [system, value, system, value, ...], shielded (0/1)]."""
    return [
        rec.child_id,
        list(rec.given_names),
        list(rec.family_names),
        rec.birth_date.toordinal() if rec.birth_date else None,
        rec.expected_delivery_date.toordinal() if rec.expected_delivery_date else None,
        rec.sex,
        list(rec.postcodes),
        [part for pair in rec.identifiers for part in pair],
        1 if rec.shielded else 0,
    ]


def from_compact(p: list[Any]) -> PersonFields:
    """Inverse of `compact`."""
    child_id, given, family, born, edd, sex, postcodes, ids, shielded = p
    return PersonFields(
        child_id=child_id,
        given_names=tuple(given),
        family_names=tuple(family),
        birth_date=date.fromordinal(born) if born else None,
        expected_delivery_date=date.fromordinal(edd) if edd else None,
        sex=sex,
        postcodes=tuple(postcodes),
        identifiers=tuple(zip(ids[::2], ids[1::2], strict=True)),
        shielded=bool(shielded),
    )


Hit = tuple[list[Any], dict[str, list[Any]]]
"""One hit as `_hits` gives it: its sort values and its doc values (`r`, `b`, `d`)."""


def could_match(hits: list[Hit], keep: BirthFilter) -> list[Hit]:
    """The hits `keep` leaves in, in order, tested on their day numbers (`b`, `d`; 0: none): with an
    exact date of birth only those born near it (or of unknown birth) are asked one by one, the rest
    get `keep.far` (as the resident embedded index does: a set lookup on the day number, no date
    built). No record is decoded here."""
    near = keep.near_days
    kept: list[Hit] = []
    for hit in hits:
        fields = hit[1]
        born, edd = fields["b"][0], fields["d"][0]
        if near is not None and born and born not in near:
            if keep.far:
                kept.append(hit)
        elif keep(date.fromordinal(born) if born else None, date.fromordinal(edd) if edd else None):
            kept.append(hit)
    return kept


def records_of(hits: list[Hit]) -> list[list[Any]]:
    """The compact records of these hits, in order: one JSON array for them all (a third of the time
    of one `json.loads` per record)."""
    records: list[list[Any]] = json.loads(
        b"[" + b",".join([a2b_base64(hit[1]["r"][0]) for hit in hits]) + b"]"
    )
    return records


class ElasticsearchBackend:
    """SearchBackend over an Elasticsearch index alias."""

    name = "elasticsearch"
    in_memory = False  # every search is a request to the cluster

    def __init__(
        self,
        client: Elasticsearch,
        *,
        alias: str = DEFAULT_ALIAS,
        shards: int = 1,
        refresh: bool | str = False,
        async_client: Callable[[], AsyncElasticsearch],
    ) -> None:
        """`refresh` is passed to every write: "wait_for" makes writes visible before returning.
        `async_client` makes the client awaited searches use, one per event loop (`from_url` makes
        both from the same URL and access)."""
        self.client = client
        self.alias = alias
        self.shards = shards
        self.refresh = refresh
        self._make_async = async_client
        self._async: dict[asyncio.AbstractEventLoop, AsyncElasticsearch] = {}

    @classmethod
    def from_url(cls, url: str, *, access: Access | None = None, **options: Any) -> ElasticsearchBackend:
        """Build a backend with a client for `url` reached with `access` (TLS, credentials; see
        search.es_client); options go to the constructor."""
        return cls(make_client(url, access), async_client=partial(make_async_client, url, access), **options)

    # --- index lifecycle -----------------------------------------------------------------

    def _settings(self, *, bulk_load: bool = False) -> dict[str, Any]:
        return {"number_of_shards": self.shards, **self._dynamic_settings(bulk_load=bulk_load)}

    @staticmethod
    def _dynamic_settings(*, bulk_load: bool = False) -> dict[str, Any]:
        # A bulk load skips replicas and periodic refreshes; both come back before the swap.
        return {
            # No replica on a single node, one as soon as there is a second node.
            "auto_expand_replicas": "0-0" if bulk_load else "0-1",
            "refresh_interval": "-1" if bulk_load else "1s",
        }

    def _new_index_name(self) -> str:
        return f"{self.alias}-{datetime.now(UTC).strftime('%Y%m%d%H%M%S%f')}"

    def _current_indices(self) -> list[str]:
        try:
            return sorted(self.client.indices.get_alias(name=self.alias).body)
        except NotFoundError:
            return []

    def ensure_ready(self) -> None:
        """Create a timestamped index behind the alias if the alias does not exist yet (an existing
        index of an older mapping is left for `childindex reindex`: see `outdated_reason`)."""
        if self.client.indices.exists_alias(name=self.alias):
            return
        self.client.indices.create(
            index=self._new_index_name(),
            settings=self._settings(),
            mappings=index_mapping(),
            aliases={self.alias: {"is_write_index": True}},
            wait_for_active_shards="1",
        )

    # --- writes ------------------------------------------------------------------------

    def _doc(self, rec: PersonFields) -> dict[str, Any]:
        stored = rec.redacted()
        p = compact(stored)
        record = json.dumps(p, separators=(",", ":")).encode()
        return {
            "child_id": rec.child_id,
            "keys": sorted(blocking_keys(stored)),
            "identifiers": _identifier_terms(stored),
            "r": b2a_base64(record, newline=False).decode(),
            "t": tiebreak(rec.child_id),
            "b": p[3] or 0,  # (the record's own day numbers: the two never disagree)
            "d": p[4] or 0,
        }

    def outdated_reason(self) -> str | None:
        """Why this release cannot search the index behind the alias (None: it can). Says what to
        do; never raises for an unreachable or refusing cluster, it says so instead."""
        try:
            mappings = self.client.indices.get_mapping(index=self.alias).body
        except NotFoundError:
            return f"Elasticsearch has no index {self.alias}: run `childindex reindex`"
        except (ApiError, TransportError) as exc:
            return f"Elasticsearch cannot be asked: {describe_failure(exc)}"
        for index, body in sorted(mappings.items()):
            version = body.get("mappings", {}).get("_meta", {}).get("childindex_mapping", 1)
            if version != MAPPING_VERSION:
                return (
                    f"Elasticsearch index {index} has mapping version {version}, this release needs "
                    f"{MAPPING_VERSION}: run `childindex reindex` to build a new index and swap the alias"
                )
        return None

    def _index_actions(self, records: Iterable[PersonFields], index: str) -> Iterator[dict[str, Any]]:
        for rec in records:
            yield {
                "_op_type": "index",
                "_index": index,
                "_id": rec.child_id,
                "_source": self._doc(rec),
            }

    def upsert(self, records: Sequence[PersonFields]) -> None:
        """Index (replace) each record by child id; idempotent."""
        if not records:
            return
        helpers.bulk(
            self.client,
            self._index_actions(records, self.alias),
            chunk_size=CHUNK_SIZE,
            refresh=self.refresh,
        )

    def delete(self, child_ids: Sequence[str]) -> None:
        """Delete documents by child id; ids not indexed are ignored."""
        if not child_ids:
            return
        actions = (
            {"_op_type": "delete", "_index": self.alias, "_id": child_id}
            for child_id in dict.fromkeys(child_ids)
        )
        failures = [
            item
            for ok, item in helpers.streaming_bulk(
                self.client,
                actions,
                chunk_size=CHUNK_SIZE,
                raise_on_error=False,
                refresh=self.refresh,
            )
            if not ok and item.get("delete", {}).get("status") != 404
        ]
        if failures:
            raise helpers.BulkIndexError(f"{len(failures)} document(s) failed to delete", failures)

    def rebuild(
        self,
        records: Iterable[PersonFields],
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Fill a new index, then swap the alias to it atomically and delete the old ones."""
        new_index = self._new_index_name()
        self.client.indices.create(
            index=new_index,
            settings=self._settings(bulk_load=True),
            mappings=index_mapping(),
            wait_for_active_shards="1",
        )
        done = 0
        try:
            for ok, _item in helpers.streaming_bulk(
                self.client,
                self._index_actions(records, new_index),
                chunk_size=CHUNK_SIZE,
                raise_on_error=True,
            ):
                if ok:
                    done += 1
                    if progress is not None and done % CHUNK_SIZE == 0:
                        progress(done)
            self.client.indices.refresh(index=new_index)
            # One segment: each of a search's ~27 terms is then looked up once, not once per segment
            # (measured at 100,000 children: mean 10.0 -> 6.2 ms a candidates call, p95 24 -> 16 ms).
            # Before replicas exist, so it is done once.
            self.client.options(request_timeout=MERGE_TIMEOUT_SECONDS).indices.forcemerge(
                index=new_index, max_num_segments=1
            )
            self.client.indices.put_settings(index=new_index, settings=self._dynamic_settings())
            self.client.indices.refresh(index=new_index)
            old = self._current_indices()
            actions: list[dict[str, Any]] = [
                {"remove": {"index": index, "alias": self.alias}} for index in old
            ]
            actions.append({"add": {"index": new_index, "alias": self.alias, "is_write_index": True}})
            self.client.indices.update_aliases(actions=actions)
        except BaseException:
            self.client.indices.delete(index=new_index, ignore_unavailable=True)
            raise
        for index in old:
            self.client.indices.delete(index=index, ignore_unavailable=True)
        if progress is not None and done % CHUNK_SIZE:
            progress(done)
        return done

    # --- reads ---------------------------------------------------------------------------

    def _request(self, query: dict[str, Any], sort: list[Any], size: int) -> dict[str, Any]:
        """The arguments of one `_search` for the best `size` hits: each hit's sort values and doc values.

        Each record comes from the doc values of `r`, with its day numbers `b` and `d`, and no stored
        field is read: not `_source`, not even `_id`. Stored fields are compressed in blocks of many
        documents, so fetching 200 scattered hits decompressed 200 blocks, most of the node's time
        (at 1,000,000 children, `took` 3 ms -> 1 ms; see docs/elasticsearch.md). The request goes
        through the client's `perform_request` with the body serialised here once (the search API's
        own argument handling was a sixth of the app's CPU for a request)."""
        body = {
            "query": query,
            "sort": sort,
            "size": size,
            "track_total_hits": False,
            "_source": False,
            "stored_fields": "_none_",
            "docvalue_fields": _DOC_VALUES,
        }
        return {
            "method": "POST",
            "path": f"/{quote(self.alias, safe='')}/_search",
            "params": _HITS_PARAMS,
            "headers": _JSON,
            "body": json.dumps(body, separators=(",", ":")).encode(),
            "endpoint_id": "search",
            "path_parts": {"index": self.alias},
        }

    @staticmethod
    def _found(body: Any) -> list[Hit] | None:
        """The hits of a `_search`'s answer, in order; None if they lack the doc values this mapping
        gives (an index of an older mapping: the caller raises `IndexOutdated`, so it never looks
        empty)."""
        hits = body.get("hits", {}).get("hits", [])
        try:
            found = [(hit["sort"], hit["fields"]) for hit in hits]
        except KeyError:
            found = []  # (no sort values, or no doc values at all: as below)
        if hits and not (found and found[0][1].keys() >= _FIELDS):
            return None  # (one index behind the alias, all of one mapping: the first hit says for all)
        return found

    @staticmethod
    def _may_be_outdated(exc: ApiError | TransportError) -> bool:
        """A 400 may be an index of an older mapping (no `t` to sort on): `outdated_reason` says."""
        return isinstance(exc, ApiError) and exc.meta.status == 400

    @staticmethod
    def _failure(exc: ApiError | TransportError, outdated: str | None) -> SearchUnavailable:
        if outdated is not None:
            return IndexOutdated(outdated)
        return SearchUnavailable(f"Elasticsearch cannot search: {describe_failure(exc)}")

    def _hits(self, query: dict[str, Any], sort: list[Any], size: int) -> list[Hit]:
        """The best `size` hits of one `_search`, in order (`_request`, `_found`)."""
        try:
            response = self.client.perform_request(**self._request(query, sort, size))
        except (ApiError, TransportError) as exc:
            raise self._failure(exc, self.outdated_reason() if self._may_be_outdated(exc) else None) from exc
        found = self._found(response.body)
        if found is None:
            raise IndexOutdated(self.outdated_reason() or _NO_RECORDS)
        return found

    async def _ahits(self, query: dict[str, Any], sort: list[Any], size: int) -> list[Hit]:
        """`_hits`, awaited on the running loop's own client. (Telling an older index from a failure
        asks the node again, in a worker thread: only once a search has failed.)"""
        try:
            response = await self._async_client().perform_request(**self._request(query, sort, size))
        except (ApiError, TransportError) as exc:
            outdated = None
            if self._may_be_outdated(exc):
                outdated = await anyio.to_thread.run_sync(self.outdated_reason)
            raise self._failure(exc, outdated) from exc
        found = self._found(response.body)
        if found is None:
            raise IndexOutdated(await anyio.to_thread.run_sync(self.outdated_reason) or _NO_RECORDS)
        return found

    def _async_client(self) -> AsyncElasticsearch:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            client = self._async[loop] = self._make_async()
        return client

    async def aclose(self) -> None:
        """Close the running loop's client (the app's shutdown)."""
        client = self._async.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    def _candidate_steps(
        self, keys: Sequence[str], limit: int, keep_birth: BirthFilter | None
    ) -> Generator[tuple[dict[str, Any], list[Any], int], list[Hit], list[PersonFields]]:
        """`candidates` as steps: each yields a `_search` (query, sort, size) and is given its hits."""
        unique = list(dict.fromkeys(keys))
        if not unique or limit <= 0:
            return []
        should = [{"constant_score": {"filter": {"term": {"keys": key}}, "boost": 1.0}} for key in unique]
        query = {"bool": {"should": should, "minimum_should_match": 1}}
        hits = yield query, [{"_score": "desc"}, {"t": "asc"}], limit + 1
        if len(hits) > limit:
            if hits[limit - 1][0] == hits[limit][0]:
                hits = yield query, [{"_score": "desc"}, {"child_id": "asc"}], limit
            else:
                del hits[limit:]
        if keep_birth is not None:
            hits = could_match(hits, keep_birth)  # (in order: the sort below is the same either way)
        scores = [hit[0][0] for hit in hits]
        found = sorted(zip(scores, records_of(hits), strict=True), key=lambda s_p: (-s_p[0], s_p[1][0]))
        return [from_compact(p) for _, p in found]  # (ties on `t` came in index order: now by id)

    def candidates(
        self, keys: Sequence[str], limit: int, *, keep_birth: BirthFilter | None = None
    ) -> list[PersonFields]:
        """Children sharing the most keys, most first, ties by child id (each shared key scores
        exactly 1); of those, only the ones `keep_birth` keeps, tested on their day numbers before
        any record is decoded.

        The node breaks ties by `t` (`tiebreak`), a number, not by the child id itself: sorting on
        a keyword costs the node a lookup of every hit's id (at 1,000,000 children, a round trip
        of 2.2 ms against 1.7). `t` never orders two children against their ids, but ids sharing
        their first 8 bytes share it: one more hit is asked for, and if the last kept and the first
        left out tie on both (score and `t`), the node is asked again sorting on the ids."""
        return run_steps(self._candidate_steps(keys, limit, keep_birth), lambda ask: self._hits(*ask))

    async def acandidates(
        self, keys: Sequence[str], limit: int, *, keep_birth: BirthFilter | None = None
    ) -> list[PersonFields]:
        """`candidates`, awaited (search.port.AsyncReads)."""
        return await await_steps(
            self._candidate_steps(keys, limit, keep_birth), lambda ask: self._ahits(*ask)
        )

    def _identifier_query(self, system: str, value: str) -> tuple[dict[str, Any], list[Any], int]:
        term = f"{system}|{normalise_identifier(system, value)}"
        return {"bool": {"filter": [{"term": {"identifiers": term}}]}}, [{"child_id": "asc"}], 50

    def by_identifier(self, system: str, value: str) -> list[PersonFields]:
        """Children holding exactly this identifier (system and normalised value)."""
        hits = self._hits(*self._identifier_query(system, value))
        return [from_compact(record) for record in records_of(hits)]

    async def aby_identifier(self, system: str, value: str) -> list[PersonFields]:
        """`by_identifier`, awaited (search.port.AsyncReads)."""
        hits = await self._ahits(*self._identifier_query(system, value))
        return [from_compact(record) for record in records_of(hits)]

    def count(self) -> int:
        """Number of indexed children (as of the last refresh)."""
        return int(self.client.count(index=self.alias)["count"])

    def refresh_now(self) -> None:
        """Make every write so far visible to searches (tests, and after bulk jobs)."""
        self.client.indices.refresh(index=self.alias)


def describe_failure(exc: Exception) -> str:
    """A short, secret-free account of why a request to the cluster failed (for /readyz and logs):
    the status and error type the node gave, or the kind of transport failure."""
    if isinstance(exc, ApiError):
        kind = ""
        if isinstance(exc.body, dict) and isinstance(exc.body.get("error"), dict):
            kind = str(exc.body["error"].get("type", ""))
        if exc.meta.status == 401:
            return "401 authentication failed: check the API key or username and password"
        if exc.meta.status == 403:
            return "403 not allowed: the credentials lack a privilege on the index"
        return f"{exc.meta.status} {kind}".strip()
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return "TLS certificate not trusted: check CHILDINDEX_ELASTICSEARCH_CA_FILE"
    return type(exc).__name__
