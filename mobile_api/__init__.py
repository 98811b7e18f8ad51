"""The ASGI edge: routes, websocket endpoints, auth, wire schemas, the CLI.

Only this package turns domain errors into HTTP statuses and websocket close
codes; everything below it (``dispatch``, ``geo``) knows nothing of the web.
"""
