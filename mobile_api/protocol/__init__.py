"""The socket protocols as sans-I/O cores (python-websockets' ``protocol.py``).

A protocol object holds one socket's state. It is handed the frames the
client sent and the results of the calls it asked for, and answers with the
frames to send and the next calls to make (``phone.PhoneProtocol`` for
``WS /v1/ws/worker``). It never awaits, reads a clock only through the
callables it is given, and imports neither asyncio nor starlette nor any store
backend: its tests are synchronous, with a pinned clock. The endpoints in
``mobile_api.sockets`` move the bytes and await the calls.

``calls`` holds the records of what a protocol asks its endpoint to do;
``frames`` what every protocol shares on the wire: the close codes, error
frames and the encoder of outgoing frames.
"""
