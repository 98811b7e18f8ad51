"""Benchmarks of fieldcloud, each figure beside a baseline measured in the same run.

Run ``python -m bench`` (a few minutes) or ``--quick`` (seconds, CI);
docs/benchmarks.md has the table and what bounds each figure. The server runs
in its own process, started like ``fieldcloud serve`` with its settings in the
environment; load comes from separate agent processes over loopback. Every
scenario that starts fieldcloud runs in memory mode and in PostgreSQL + Redis
mode (``--mode``), the latter on a database and key prefix of the run's own
(:mod:`.services`).

Scenarios, one module each:

* :mod:`.ingest` -- location updates per second through websockets into the
  index, in each mode, against a bare websocket server on the same stack (the
  ceiling);
* :mod:`.nearest` -- the k-nearest query at 10k/100k/1M workers: the H3 cell
  index against brute force, Redis ``GEOSEARCH`` and the Redis H3 index;
* :mod:`.offers` -- ``POST /v1/jobs`` to the offer frame on the phones, with
  thousands of sockets connected (in production mode across two instances:
  jobs posted to one, phones on the other), against a ping round trip;
* :mod:`.connections` -- resident memory per idle socket, against the bare server;
* :mod:`.scaleout` -- ingest over two instances against one (PostgreSQL + Redis).

Plumbing: :mod:`.runner` (plan, rows, table, JSON, progress bar), :mod:`.procs`
(server and agent processes, CPU accounting, py-spy), :mod:`.services` (the
run's PostgreSQL database and Redis prefix), :mod:`.wire` (the phone and HTTP
clients), :mod:`.setup` (organisations and workers), :mod:`.fleet` (many
phones held by agents), :mod:`.bare` (the ceiling server).
"""
