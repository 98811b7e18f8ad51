"""Benchmarks of fieldcloud, each figure beside a baseline measured in the same run.

Run ``python -m mobile_api.bench`` (a few minutes) or ``--quick`` (seconds, CI);
docs/benchmarks.md has the table and what bounds each figure. The server runs
in its own process, started like ``fieldcloud serve`` with its settings in the
environment; load comes from separate agent processes over loopback.

Scenarios, one module each:

* :mod:`.ingest` -- location updates per second through websockets into the
  index, against a bare websocket server on the same stack (the ceiling);
* :mod:`.nearest` -- the k-nearest query at 10k/100k/1M workers: the H3 cell
  index against brute force, Redis ``GEOSEARCH`` and the Redis H3 index;
* :mod:`.offers` -- ``POST /v1/jobs`` to the offer frame on the phones, with
  thousands of sockets connected, against a ping round trip;
* :mod:`.connections` -- resident memory per idle socket, against the bare server;
* :mod:`.scaleout` -- a slot for several instances in PostgreSQL + Redis mode.

Plumbing: :mod:`.runner` (plan, rows, table, JSON, progress bar), :mod:`.procs`
(server and agent processes, py-spy), :mod:`.wire` (the phone and HTTP
clients), :mod:`.setup` (organisations and workers), :mod:`.fleet` (many
phones held by agents), :mod:`.bare` (the ceiling server).
"""
