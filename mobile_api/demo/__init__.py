"""The demo and the tools around it: ``fieldcloud demo`` and ``fieldcloud phone``.

``run`` starts the real server with a simulated fleet (``simulator``) in a
real city (``city``) and a feed of work orders; ``phone`` drives one
technician by hand from a terminal. Nothing here is used by the server.
"""
