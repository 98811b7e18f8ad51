"""Redis location index: the ``LocationIndex`` port, answered inside Redis.

Layout (see ``keys``): per organisation, one hash per populated H3 cell
(``worker id -> "lat,lng"``), a ``where`` hash (``worker id -> cell``), the
populated cells in a geo set at their centers (``cellgeo``; cells centred
beyond a geo set's latitude range in the ``polar`` hash instead) and
``reach``, the largest circumradius of any cell ever populated. All in one
Cluster slot. Writes go through the ``RedisWriter`` (batched; one atomic
script per organisation per batch).

A query is one script call, ``NEAREST_SCRIPT``, which searches next to the
data (decision 0003). It walks the populated cells in order of their
center's distance (``GEOSEARCH … BYRADIUS r ASC COUNT n``, ``n`` growing
fourfold and ``r`` doubling while the walk needs more; past 500 km, every
cell left, bounded from its stored center), scans each cell's members with
the very haversine of ``geo.haversine_m`` (the same operations on the same
doubles), keeps the best ``k`` ordered by ``(distance, worker id)`` and
stops at the first cell whose lower bound — the center's distance, made
conservative for Redis's own sphere and geohash rounding, minus ``reach`` —
exceeds the k-th distance (or the radius). Every member it never scans is
farther than every result, so the answer equals the memory index's.

Rules for callers: positions are validated like the memory index's (``geo``
errors, nothing written); a query sees every write this process completed
before it started; writes of other instances racing with a query may or may
not be seen (a worker moving during a query is reported once, at one of its
positions). Filtering by eligibility is the caller's (the service asks for
more when some of the nearest are not eligible).
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from geo import Cell, latlng_to_cell, validate_latlng
from geo.cells import center_and_circumradius_m
from geo.distance import EARTH_RADIUS_M, haversine_m
from geo.search import reach_m, validate_limit, validate_radius

from ..ports import Nearby
from .client import Script, redis_errors
from .keys import Keys

if TYPE_CHECKING:
    from .writer import RedisWriter

__all__ = ["GEO_MAX_LAT", "MOVE_SCRIPT", "NEAREST_SCRIPT", "RedisLocationIndex", "cell_place"]

GEO_MAX_LAT = 85.05112878
"""A Redis geo set holds latitudes up to this; cells centred beyond go to ``polar``."""

MOVE_SCRIPT = Script(
    f"""
-- Write one organisation's batch of last fixes and index moves, atomically.
-- KEYS: where hash, populated-cells geo set, polar hash, reach string, fixes
-- hash, then the cell hashes written. ARGV[1] = the cell key prefix, ARGV[2]
-- = the writes, one line each of four tab-separated fields: op ('f' fix /
-- 'd' forget the fix / 'u' upsert / 'r' remove), worker id, the cell ('u': "hex lng lat reach",
-- its center and circumradius), value (the encoded fix for 'f', "lat,lng"
-- for 'u').
-- Old cells come from the where hash; they share the slot (org tag).
local where, geo, polar, reach_key, fixes = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local prefix = ARGV[1]
local reach = tonumber(redis.call('GET', reach_key) or '0')
local grown = false
local function leave(old, w)
  local key = prefix .. old
  redis.call('HDEL', key, w)
  if redis.call('HLEN', key) == 0 then
    redis.call('ZREM', geo, old)
    redis.call('HDEL', polar, old)
  end
end
local function enter(cell, lng, lat, r)
  if math.abs(tonumber(lat)) > {GEO_MAX_LAT} then
    redis.call('HSET', polar, cell, lat .. ',' .. lng)
  else
    redis.call('GEOADD', geo, lng, lat, cell)
  end
  r = tonumber(r)
  if r > reach then
    reach = r
    grown = true
  end
end
for op, w, place, value in string.gmatch(ARGV[2], '(%a)\\t([^\\t]*)\\t([^\\t]*)\\t([^\\n]*)\\n') do
  if op == 'f' then
    redis.call('HSET', fixes, w, value)
  elseif op == 'd' then
    redis.call('HDEL', fixes, w)
  else
    local old = redis.call('HGET', where, w)
    if op == 'u' then
      local cell, lng, lat, r = string.match(place, '^(%S+) (%S+) (%S+) (%S+)$')
      if old and old ~= cell then leave(old, w) end
      redis.call('HSET', prefix .. cell, w, value)
      if old ~= cell then
        redis.call('HSET', where, w, cell)
        enter(cell, lng, lat, r)
      end
    elseif old then
      leave(old, w)
      redis.call('HDEL', where, w)
    end
  end
end
if grown then redis.call('SET', reach_key, string.format('%.17g', reach)) end
return 0
"""
)

_FARTHEST_M = 20_100_000.0
"""More than half the Earth's circumference: no two points are farther apart."""

_GEO_SEARCH_LIMIT_M = 500_000.0
"""Widest ``GEOSEARCH`` radius the script trusts (wider misses cells near the poles)."""

_FIRST_COUNT = 16
"""Cells asked of the first ``GEOSEARCH`` (fourfold while more lie within its radius)."""

_FIRST_RADIUS_REACHES = 4.0
"""The first ``GEOSEARCH`` radius, in cell circumradii (it doubles while needed)."""

_PLACE_CACHE_SIZE = 1 << 16

NEAREST_SCRIPT = Script(
    f"""
-- The k nearest members within a radius, nearest first (ties: worker id,
-- bytewise). KEYS[1] = populated-cells geo set, KEYS[2] = polar hash,
-- KEYS[3] = reach. ARGV: cell key prefix, lat, lng, k, radius (m, finite),
-- degrees-to-radians, Earth diameter (m), the first GEOSEARCH's radius in
-- reaches (it doubles until the walk is done). Reply: worker id, "lat,lng"
-- as stored, repeated, nearest first (the caller recomputes the distances).
-- Cell hashes share the declared keys' slot.
local geo, polar, prefix = KEYS[1], KEYS[2], ARGV[1]
local qlat, qlng = tonumber(ARGV[2]), tonumber(ARGV[3])
local k, bound = tonumber(ARGV[4]), tonumber(ARGV[5])
local rad, diameter = tonumber(ARGV[6]), tonumber(ARGV[7])
local reach = tonumber(redis.call('GET', KEYS[3]) or '0')
local sin, cos, asin, sqrt, byte = math.sin, math.cos, math.asin, math.sqrt, string.byte
local phi = qlat * rad
local cos_phi = cos(phi)
-- geo.haversine_m from the query point, operation for operation.
local function distance(lat, lng)
  local phi2 = lat * rad
  local s = sin((phi2 - phi) * 0.5)
  local t = sin((lng - qlng) * rad * 0.5)
  local a = s * s + cos_phi * cos(phi2) * t * t
  if not (a < 1.0) then a = 1.0 end
  return diameter * asin(sqrt(a))
end
local dists, ids, spots, n = {{}}, {{}}, {{}}, 0
local function before(d1, id1, d2, id2)
  if d1 ~= d2 then return d1 < d2 end
  for j = 1, math.min(#id1, #id2) do
    local b1, b2 = byte(id1, j), byte(id2, j)
    if b1 ~= b2 then return b1 < b2 end
  end
  return #id1 < #id2
end
local function offer(id, d, spot)
  if d > bound or (n >= k and not before(d, id, dists[n], ids[n])) then return end
  local j = n
  if n < k then
    n = n + 1
    j = n
  end
  while j > 1 and before(d, id, dists[j - 1], ids[j - 1]) do
    dists[j], ids[j], spots[j] = dists[j - 1], ids[j - 1], spots[j - 1]
    j = j - 1
  end
  dists[j], ids[j], spots[j] = d, id, spot
  if n >= k then bound = dists[n] end
end
local function scan(cell)
  local flat = redis.call('HGETALL', prefix .. cell)
  for j = 1, #flat, 2 do
    local spot = flat[j + 1]
    local comma = string.find(spot, ',', 1, true)
    local lat = tonumber(string.sub(spot, 1, comma - 1))
    offer(flat[j], distance(lat, tonumber(string.sub(spot, comma + 1))), spot)
  end
end
local function latlng(text)
  local comma = string.find(text, ',', 1, true)
  return tonumber(string.sub(text, 1, comma - 1)), tonumber(string.sub(text, comma + 1))
end
-- Cells too close to a pole for the geo set: exact bound from the center
-- (one more metre where haversine nears the antipode).
local polars = redis.call('HGETALL', polar)
for j = 1, #polars, 2 do
  local lat, lng = latlng(polars[j + 1])
  if distance(lat, lng) - reach - 1.0 <= bound then scan(polars[j]) end
end
-- The geo set is searched from the query point clamped to its latitudes;
-- the clamp's length is taken off every bound (triangle inequality).
local glat = math.max(-{GEO_MAX_LAT}, math.min({GEO_MAX_LAT}, qlat))
local shift = 0.0
if glat ~= qlat then shift = distance(glat, qlng) + 1.0 end
-- Redis measures on a sphere of 6372797.56 m from centers rounded to its
-- geohash (< 1 m): ours >= 0.9997 x its distance - 2 m.
local function lower(d) return d * 0.9997 - 2.0 - shift - reach end
-- Geo searches only up to {_GEO_SEARCH_LIMIT_M:.0f} m (wider ones are not exact near
-- the poles); beyond that, every cell not yet seen is bounded from its
-- stored center instead (GEOPOS: geohash-rounded, < 1 m).
local within = (bound + reach + shift) * 1.0003 + 2.0
local near = math.min(within, {_GEO_SEARCH_LIMIT_M})
local r, seen, stop = math.min(near, tonumber(ARGV[8]) * reach + 1.0), {{}}, false
local count = {_FIRST_COUNT}
while true do
  local found = redis.call('GEOSEARCH', geo, 'FROMLONLAT', qlng, glat,
    'BYRADIUS', r, 'm', 'ASC', 'COUNT', count, 'WITHDIST')
  for j = 1, #found do
    local cell = found[j][1]
    if lower(tonumber(found[j][2])) > bound then
      stop = true
      break
    end
    if not seen[cell] then
      seen[cell] = true
      scan(cell)
    end
  end
  if stop then break end
  if #found == count then
    count = count * 4  -- more cells within r than asked: ask again for more
  else
    -- Every cell within r was seen; the others lie farther than r.
    if lower(r) > bound then
      stop = true
      break
    end
    if r >= near then break end
    r = math.min(r * 2.0, near)
  end
end
if not stop and within > near then
  local cells, rows = redis.call('ZRANGE', geo, 0, -1), {{}}
  for first = 1, #cells, 1000 do
    local chunk = {{unpack(cells, first, math.min(first + 999, #cells))}}
    local centers = redis.call('GEOPOS', geo, unpack(chunk))
    for j = 1, #chunk do
      if not seen[chunk[j]] then
        local c = centers[j]
        rows[#rows + 1] = {{distance(tonumber(c[2]), tonumber(c[1])) - reach - 2.0, chunk[j]}}
      end
    end
  end
  table.sort(rows, function(a, b) return a[1] < b[1] end)
  for j = 1, #rows do
    if rows[j][1] > bound then break end
    scan(rows[j][2])
  end
end
local out = {{}}
for j = 1, n do
  out[#out + 1] = ids[j]
  out[#out + 1] = spots[j]
end
return out
"""
)


@functools.lru_cache(maxsize=_PLACE_CACHE_SIZE)
def cell_place(cell: Cell) -> str:
    """``"hex lng lat reach"``: the cell's center and circumradius, as the scripts read them.

    ``reach`` carries geo.search's slack, so it bounds every point of the cell.
    """
    lat, lng, circumradius = center_and_circumradius_m(cell)
    return f"{Keys.cell_name(cell)} {lng!r} {lat!r} {reach_m(circumradius)!r}"


class RedisLocationIndex:
    """``LocationIndex`` in Redis; see the module docstring."""

    def __init__(
        self, client: aioredis.Redis, keys: Keys, writer: RedisWriter, resolution: int
    ) -> None:
        self._redis = client
        self._keys = keys
        self._writer = writer
        self._resolution = resolution
        self.first_radius = _FIRST_RADIUS_REACHES

    async def upsert(self, org_id: str, worker_id: str, lat: float, lng: float) -> int:
        cell = latlng_to_cell(lat, lng, self._resolution)
        await self._writer.upsert(
            org_id, worker_id, Keys.cell_name(cell), cell_place(cell), lat, lng
        )
        return cell

    async def remove(self, org_id: str, worker_id: str) -> None:
        await self._writer.remove(org_id, worker_id)

    async def nearest(
        self, org_id: str, lat: float, lng: float, k: int, max_radius_m: float
    ) -> list[Nearby]:
        validate_latlng(lat, lng)
        validate_limit(k)
        validate_radius(max_radius_m)
        if k == 0:
            return []
        radius = min(float(max_radius_m), _FARTHEST_M)
        keys = self._keys
        script_keys = [keys.cell_geo(org_id), keys.polar(org_id), keys.reach(org_id)]
        args = [
            keys.cell_prefix(org_id),
            repr(float(lat)),
            repr(float(lng)),
            str(k),
            repr(radius),
            _RADIANS_TEXT,
            _DIAMETER_TEXT,
            repr(self.first_radius),
        ]
        with redis_errors():
            reply = await NEAREST_SCRIPT(self._redis, script_keys, args)
        return _decode(reply, lat, lng)


# geo.haversine_m's constants, passed as exact text so the script's doubles are its own.
_RADIANS_TEXT = repr(math.pi / 180.0)
_DIAMETER_TEXT = repr(2.0 * EARTH_RADIUS_M)


def _decode(reply: list[Any], lat: float, lng: float) -> list[Nearby]:
    """``NEAREST_SCRIPT``'s flat reply as ``Nearby`` rows (order kept).

    The distance is ``geo.haversine_m``'s, which the script repeats operation
    for operation (formatting it in the script would cost more than this).
    """
    hits = []
    for i in range(0, len(reply), 2):
        text_lat, text_lng = reply[i + 1].split(",")
        m_lat, m_lng = float(text_lat), float(text_lng)
        hits.append(Nearby(reply[i], haversine_m(lat, lng, m_lat, m_lng), m_lat, m_lng))
    return hits
