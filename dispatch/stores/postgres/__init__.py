"""PostgreSQL backend (asyncpg): the source of truth, one module per concept.

=====================  ======================================================
``pool``               the pool, error mapping, the job transaction's connection
``organisations``      ``PgOrgStore``: organisations and hashed API keys
``workers``            ``PgWorkerStore``: workers (their last fix in a ``FixCache``)
``jobs``               ``PgJobStore``: jobs, offers, the event log, row locks
``outbox``             ``PgOutbox``: effects written with their change (decision 0005)
``migrations``         applying ``sql/NNNN_name.sql`` once each
=====================  ======================================================

PostgreSQL decides every race with one conditional statement (``claim``) or
a row lock (``jobs``). Connection failures surface as
``dispatch.errors.Unavailable``.
"""
