"""The scale-out backend: blocking keys in an Elasticsearch index behind an alias.

The only module that imports the Elasticsearch client. The application owns the mapping
and settings; no analysis plugin is needed because every key is computed in Python
(search.blocking.blocking_keys) and stored as an exact keyword.

Reads and writes go through the alias `childindex-children`, which points at one concrete
index `childindex-children-<UTC timestamp>`. `rebuild` fills a new index and moves the
alias in one atomic `_aliases` call, so searches never see a half-built index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from elasticsearch import Elasticsearch, NotFoundError, helpers

from search.blocking import blocking_keys
from search.normalise import normalise_identifier
from search.port import BirthFilter, PersonFields

DEFAULT_ALIAS = "childindex-children"
CHUNK_SIZE = 1000
"""Documents per bulk request."""


def _identifier_terms(rec: PersonFields) -> list[str]:
    return [f"{s}|{normalise_identifier(s, v)}" for s, v in rec.identifiers]


def index_mapping() -> dict[str, Any]:
    """The mapping of a children index: exact keywords to search, the record kept in _source."""
    return {
        "dynamic": "strict",
        "properties": {
            "child_id": {"type": "keyword"},
            # Only ever matched exactly, never sorted or aggregated: no doc values needed.
            "keys": {"type": "keyword", "doc_values": False},
            "identifiers": {"type": "keyword", "doc_values": False},
            # Returned from _source, never searched.
            "person": {"type": "object", "enabled": False},
        },
    }


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
    ) -> None:
        """`refresh` is passed to every write: "wait_for" makes writes visible before returning."""
        self.client = client
        self.alias = alias
        self.shards = shards
        self.refresh = refresh

    @classmethod
    def from_url(cls, url: str, **options: Any) -> ElasticsearchBackend:
        """Build a backend with a client for `url`; options go to the constructor."""
        return cls(Elasticsearch(url, request_timeout=30), **options)

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
        """Create a timestamped index behind the alias if the alias does not exist yet."""
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
        return {
            "child_id": rec.child_id,
            "keys": sorted(blocking_keys(stored)),
            "identifiers": _identifier_terms(stored),
            "person": stored.to_dict(),
        }

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

    def candidates(
        self, keys: Sequence[str], limit: int, *, keep_birth: BirthFilter | None = None
    ) -> list[PersonFields]:
        """Children sharing the most keys, most first: each shared key scores exactly 1 (all of
        them: the node returns whole records, so `keep_birth` would save nothing here)."""
        unique = list(dict.fromkeys(keys))
        if not unique or limit <= 0:
            return []
        should = [{"constant_score": {"filter": {"term": {"keys": key}}, "boost": 1.0}} for key in unique]
        response = self.client.search(
            index=self.alias,
            query={"bool": {"should": should, "minimum_should_match": 1}},
            sort=[{"_score": "desc"}, {"child_id": "asc"}],
            size=limit,
            source_includes=["person"],
            track_total_hits=False,
        )
        return [PersonFields.from_dict(hit["_source"]["person"]) for hit in response["hits"]["hits"]]

    def by_identifier(self, system: str, value: str) -> list[PersonFields]:
        """Children holding exactly this identifier (system and normalised value)."""
        term = f"{system}|{normalise_identifier(system, value)}"
        response = self.client.search(
            index=self.alias,
            query={"bool": {"filter": [{"term": {"identifiers": term}}]}},
            sort=[{"child_id": "asc"}],
            size=50,
            source_includes=["person"],
            track_total_hits=False,
        )
        return [PersonFields.from_dict(hit["_source"]["person"]) for hit in response["hits"]["hits"]]

    def count(self) -> int:
        """Number of indexed children (as of the last refresh)."""
        return int(self.client.count(index=self.alias)["count"])

    def refresh_now(self) -> None:
        """Make every write so far visible to searches (tests, and after bulk jobs)."""
        self.client.indices.refresh(index=self.alias)
