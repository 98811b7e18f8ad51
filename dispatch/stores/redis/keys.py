"""Every Redis key and channel name, built in one place.

Nothing else in the code base spells a Redis key: the Redis stores take a
``Keys`` and ask it. All names start with a configurable prefix (default
``fieldcloud``; tests use a unique prefix per run so that ``SCAN`` on
``Keys.pattern()`` finds everything a run wrote).

Layout (``P`` = prefix, ``{…}`` = Redis Cluster hash tag)::

    P:loc:{o:<org>}:c:<cell hex>   hash    worker id -> "lat,lng" (members of one H3 cell)
    P:loc:{o:<org>}:where          hash    worker id -> cell hex (the worker's current cell)
    P:loc:{o:<org>}:cellgeo        geo set populated cells at their centers (member: cell hex)
    P:loc:{o:<org>}:polar          hash    cell hex -> center "lat,lng" (cells past geo latitudes)
    P:loc:{o:<org>}:reach          string  largest circumradius of any cell ever populated (m)
    P:loc:{o:<org>}:fix            hash    worker id -> "lat,lng,accuracy,at" (last fixes)
    P:w:{w:<worker>}:seq           string  last notice sequence number (INCR)
    P:w:{w:<worker>}:log           stream  notices, entry id "<seq>-0", capped (MAXLEN)
    P:w:{w:<worker>}:wake          channel PUBLISH <seq> after each append (a hint)
    P:w:{w:<worker>}:keys          zset    keys of recent keyed notices, score = their seq
    P:w:{w:<worker>}:at            string  instance id holding the worker's socket (TTL)

Hash tags, chosen on purpose:

* Per-organisation location keys share the tag ``{o:<org>}``: the cell
  hashes, ``where``, the populated cells (``cellgeo``, ``polar``), ``reach``
  and the last fixes sit in one slot, so a nearest query is one script on one
  node, and one script call per organisation writes a whole batch of fixes
  and moves (old cell, new cell, ``where``, the populated cells) atomically;
  per-worker fix keys would make that batch cross-slot. The price: one
  organisation's whole index lives on one node, so a single huge
  organisation cannot be spread over a cluster (tagging by a coarse parent
  cell instead would spread it, at the cost of multi-slot queries and
  non-atomic moves across parents).
* Per-worker keys share the tag ``{w:<worker>}``: the sequence counter and the
  log are in one slot, so "increment, append, trim, publish" is one atomic
  script (which also checks and records the notice's de-duplication key),
  and the presence key of a worker lives next to them.
  Different workers spread evenly over the cluster.

Rules for callers: ids may be any string, but an id containing ``}`` moves
the effective hash tag (keys stay distinct, slots may collide); the prefix
itself must not contain ``{`` or ``}``.
"""

from __future__ import annotations

DEFAULT_PREFIX = "fieldcloud"


class Keys:
    """Builds every Redis key and channel name under one prefix."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError("a Redis key prefix must be non-empty and free of '{' and '}'")
        self.prefix = prefix

    # -- the location index, tagged per organisation ---------------------------

    def _org(self, org_id: str) -> str:
        return f"{self.prefix}:loc:{{o:{org_id}}}"

    def cell_prefix(self, org_id: str) -> str:
        """The prefix of an organisation's cell hashes; append ``cell_name(cell)``."""
        return f"{self._org(org_id)}:c:"

    @staticmethod
    def cell_name(cell: int) -> str:
        """How a cell is written inside keys and hash values (lower-case hex)."""
        return f"{cell:x}"

    def cell(self, org_id: str, cell: int) -> str:
        """Hash of the workers in one H3 cell: worker id -> ``"lat,lng"``."""
        return self.cell_prefix(org_id) + self.cell_name(cell)

    def where(self, org_id: str) -> str:
        """Hash of worker id -> the hex cell the worker is indexed in."""
        return f"{self._org(org_id)}:where"

    def cell_geo(self, org_id: str) -> str:
        """Geo set of the populated cells (member: cell hex) at their centers."""
        return f"{self._org(org_id)}:cellgeo"

    def polar(self, org_id: str) -> str:
        """Hash of populated cells whose center lies beyond a geo set's latitude range."""
        return f"{self._org(org_id)}:polar"

    def reach(self, org_id: str) -> str:
        """The largest circumradius (metres, with slack) of any cell ever populated."""
        return f"{self._org(org_id)}:reach"

    def fixes(self, org_id: str) -> str:
        """Hash of worker id -> last fix ``"lat,lng,accuracy,at"`` (accuracy may be empty)."""
        return f"{self._org(org_id)}:fix"

    # -- per-worker state, tagged per worker -----------------------------------

    def _worker(self, worker_id: str) -> str:
        return f"{self.prefix}:w:{{w:{worker_id}}}"

    def feed_seq(self, worker_id: str) -> str:
        """Counter of the worker's notices (the last sequence number handed out)."""
        return f"{self._worker(worker_id)}:seq"

    def feed_log(self, worker_id: str) -> str:
        """Stream of the worker's notices; entry ids are ``<seq>-0``."""
        return f"{self._worker(worker_id)}:log"

    def feed_keys(self, worker_id: str) -> str:
        """Sorted set of the keys (outbox effect ids) of recent notices, scored by seq."""
        return f"{self._worker(worker_id)}:keys"

    def feed_channel(self, worker_id: str) -> str:
        """Pub/sub channel announcing a new notice (payload: its seq)."""
        return f"{self._worker(worker_id)}:wake"

    def presence(self, worker_id: str) -> str:
        """Which instance holds the worker's socket (expires unless refreshed)."""
        return f"{self._worker(worker_id)}:at"

    # -- housekeeping ----------------------------------------------------------

    def pattern(self) -> str:
        """A ``SCAN MATCH`` pattern for every key under this prefix."""
        escaped = "".join("\\" + ch if ch in "\\*?[]" else ch for ch in self.prefix)
        return f"{escaped}:*"
