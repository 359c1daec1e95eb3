"""A memory-resident copy of the embedded index, kept fresh through `search_log`.

Why it exists: at 1,000,000 children the embedded backend's candidate statement reads about
2,200 postings out of 21 million rows in `search_key`, groups them and joins 200 records: 3.5 ms
per search with a warm page cache and about 9 ms with a cold one (and the page cache of a busy
machine is rarely warm). The same lookup over sorted numpy arrays in this process's memory takes
a fraction of a millisecond and touches no disk. The database stays the truth; this is a cache
with a change log, and every search checks the log first, so a search never sees older data
than the SQL path would.

What it holds (0.33 GiB of arrays per million children, 0.5 GiB resident in all; most of it
the postings and the stored records):

- the *base*, loaded once: the distinct keys as a sorted int64 array of their hashes (Python's
  `hash` of the key: the copy lives in one process; a 64-bit collision, vanishingly rare, would
  at worst count one more shared key for a candidate that is then scored anyway), each with
  where its postings start in an int32 array of child ordinals grouped by key; the children's
  ids, sorted, as a numpy bytes array (ordinal = position, so ordinal order is child_id order
  for ties: byte order, which is SQLite's and, for the directory's lowercase hex ids,
  PostgreSQL's whatever its collation); and their stored JSON in one blob with start and end
  offsets, each as a `marshal`led tuple (see `_compact`);
- an `alive` mask over base ordinals and a small *delta* for children changed since the load
  (dicts: child_id -> record and key hashes, key hash -> child_ids; see `_Snapshot`).

Searches read an immutable snapshot (base, alive, delta, last seq applied). Applying changes
builds a new snapshot under a lock and swaps the reference, so concurrent searches never see a
half-applied state. A rebuild (a NULL row in the log), a pruned gap or a large backlog drops the
copy: searches go back to SQL while a background thread loads a new one.

Where: snapshot.py holds the state and answers a search (base, delta, `Snapshot.candidates`);
load.py builds a snapshot from the tables (and reads changed children back); index.py is
`ResidentIndex`, which keeps one fresh from the log and loads it in a background thread.
"""

from __future__ import annotations

from search.resident.index import ResidentIndex

__all__ = ["ResidentIndex"]
