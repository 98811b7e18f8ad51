"""Redis backend (redis-py asyncio): the hot state, one module per concept.

===============  ============================================================
``keys``         every key and channel name, with its Cluster hash tag
``client``       error mapping and Lua scripts run by SHA
``index``        ``RedisLocationIndex``: the location index, its write script
                 (``MOVE_SCRIPT``) and its nearest search (``NEAREST_SCRIPT``)
``writer``       ``RedisWriter``: group-committed fixes and index moves
``fixes``        ``RedisFixes``: the workers' last fixes
``feed``         ``RedisWorkerFeed``: durable per-worker notice logs
``listener``     ``FeedListeners``: one pub/sub connection, callbacks in seq order
``presence``     ``RedisPresence``: which instance holds a worker's socket
===============  ============================================================

Redis holds positions, the location index, per-worker notice logs and
presence; losing it loses none of the record (PostgreSQL). Connection
failures surface as ``dispatch.errors.Unavailable``.
"""
