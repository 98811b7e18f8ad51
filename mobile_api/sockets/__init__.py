"""Websocket endpoints as raw ASGI callables; ``mobile_api.routes.SOCKETS`` lists them."""
