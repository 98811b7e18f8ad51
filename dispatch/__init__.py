"""The dispatch domain: who may be offered which job, and what happens next.

The pure part (``models``, ``lifecycle``, ``matching``, ``offers``, ``config``,
``errors``) takes events and the current time and never does I/O. The
application service (``service``) drives it against the store ports in
``stores``.
"""
