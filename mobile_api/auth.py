"""Who is calling: a bearer token becomes a ``Principal``; one place says 401 or 403.

Roles (``Role``), each with its own kind of secret:

==========  ================================  ===============================
Rules for handlers (HTTP routes and socket handshakes):

1. Call ``authorize(headers, service, admin_token, *roles)`` before anything
   else; it runs the three steps below, and only they decide the status:
   ``bearer`` (no or a malformed ``Authorization`` header: 401),
   ``authenticate`` (a secret that is nobody's: 401) and ``require`` (a valid
   secret of a role the call does not take: 403).
2. Scope every service call by ``principal.tenant`` (and, for a device,
   ``principal.worker_id``), never by an id from the request: the service
   answers 404 for another organisation's ids.

Authenticating is cheap, since the phone handshake pays it: the admin token is
compared in constant time with no store read, and every other secret names its
kind in its prefix (``dispatch.credentials``), so at most one store is probed,
by the secret's digest. A secret with no known prefix is unknown without a
store read.

A new kind of secret (dispatcher tokens, Open311 client keys) is a member of
``Role``, a prefix in ``dispatch.credentials`` and one entry in ``LOOKUPS``.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.datastructures import Headers

from dispatch.console import Console
from dispatch.credentials import DEVICE_TOKEN, DISPATCHER_TOKEN, ORG_KEY, kind_of
from dispatch.models import Actor, Worker
from dispatch.open311.service import OPEN311_KEY, client_for_secret
from dispatch.service import DispatchService

from .errors import ApiError

MAX_TOKEN_CHARS = 512
"""Longer ``Authorization`` values are refused (401) before any lookup."""


class Role(enum.StrEnum):
    """What a caller may do, decided by the kind of secret it presents."""

    ADMIN = "admin"
    """The bootstrap admin: creates organisations; belongs to none."""
    ORG = "org"
    """An organisation's integration key: its workers and jobs."""
    WORKER = "worker"
    """A technician's device: the phone socket, for that worker only."""
    DISPATCHER = "dispatcher"
    """A person in the control room: the organisation's lists and hand-made changes."""
    OPEN311 = "open311"
    """A citizen app's Open311 client key: posts GeoReport requests and nothing else."""


NEEDS: dict[Role, str] = {
    Role.ADMIN: "the admin token",
    Role.ORG: "an organisation API key",
    Role.WORKER: "a worker device token",
    Role.DISPATCHER: "a dispatcher token",
    Role.OPEN311: "an Open311 client key",
}
"""How a 403 names each role a call would have taken."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: its role, its organisation and, for a device, its worker."""

    role: Role
    org_id: str | None = None
    """The organisation the caller acts for; None only for the admin."""
    worker_id: str | None = None
    """The worker a device token belongs to; None for every other role."""
    worker: Worker | None = field(default=None, compare=False, repr=False)
    """The worker's record as read while authenticating (saves the handshake a read)."""
    dispatcher_id: str | None = None
    """The dispatcher a dispatcher token belongs to; None for every other role."""

    @property
    def tenant(self) -> str:
        """The organisation to scope calls by; 403 for a caller bound to none (admin)."""
        if self.org_id is None:
            raise ApiError(403, "forbidden", "this call acts for an organisation")
        return self.org_id

    @property
    def actor(self) -> Actor:
        """Who to record as ``by`` of a hand-made change: the dispatcher, else the org key."""
        if self.dispatcher_id is not None:
            return Actor(Role.DISPATCHER.value, self.dispatcher_id)
        return Actor(self.role.value, self.tenant)

    @property
    def device(self) -> Worker:
        """The worker whose device token this is; 403 for any other caller."""
        if self.worker is None:
            raise ApiError(403, "forbidden", f"this call needs {NEEDS[Role.WORKER]}")
        return self.worker


Lookup = Callable[[DispatchService, str], Awaitable[Principal | None]]
"""Finds the principal owning a secret (of the lookup's kind), or None."""


async def _org_key(service: DispatchService, secret: str) -> Principal | None:
    org = await service.org_for_key(secret)
    return None if org is None else Principal(Role.ORG, org.id)


async def _device_token(service: DispatchService, secret: str) -> Principal | None:
    worker = await service.worker_for_token(secret)
    if worker is None:
        return None
    return Principal(Role.WORKER, worker.org_id, worker.id, worker)


async def _dispatcher_token(service: DispatchService, secret: str) -> Principal | None:
    found = await Console(service).dispatcher_for_token(secret)
    return (
        None if found is None else Principal(Role.DISPATCHER, found.org_id, dispatcher_id=found.id)
    )


async def _open311_key(service: DispatchService, secret: str) -> Principal | None:
    client = await client_for_secret(service.stores, secret)
    return None if client is None else Principal(Role.OPEN311, client.org_id)


LOOKUPS: dict[str, Lookup] = {
    ORG_KEY: _org_key,
    DEVICE_TOKEN: _device_token,
    DISPATCHER_TOKEN: _dispatcher_token,
    OPEN311_KEY: _open311_key,
}
"""The store lookup for each secret prefix (``dispatch.credentials``)."""


def bearer(headers: Headers) -> str:
    """The token of an ``Authorization: Bearer …`` header, or ``ApiError`` 401."""
    value = headers.get("authorization")
    if not value:
        raise ApiError(401, "unauthenticated", "missing Authorization: Bearer <token> header")
    scheme, _, token = value.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
        raise ApiError(401, "unauthenticated", "Authorization must be 'Bearer <token>'")
    return token


async def authenticate(token: str, service: DispatchService, admin_token: str) -> Principal:
    """Whose secret ``token`` is; ``ApiError`` 401 if it is nobody's.

    The admin token wins over any prefix (an operator may choose any admin
    token); otherwise only the store named by the token's prefix is asked.
    """
    if hmac.compare_digest(token.encode(), admin_token.encode()):
        return Principal(Role.ADMIN)
    lookup = LOOKUPS.get(kind_of(token))
    principal = None if lookup is None else await lookup(service, token)
    if principal is None:
        raise ApiError(401, "unauthenticated", "unknown token")
    return principal


def require(principal: Principal, *roles: Role) -> Principal:
    """``principal`` if its role is one of ``roles``; ``ApiError`` 403 otherwise."""
    if principal.role in roles:
        return principal
    needed = " or ".join(NEEDS[role] for role in roles)
    raise ApiError(403, "forbidden", f"this call needs {needed}")


async def authorize(
    headers: Headers, service: DispatchService, admin_token: str, *roles: Role
) -> Principal:
    """The caller of a request that only ``roles`` may make (401 and 403 as above)."""
    principal = await authenticate(bearer(headers), service, admin_token)
    return require(principal, *roles)


async def require_worker(headers: Headers, service: DispatchService, admin_token: str) -> Worker:
    """The worker whose device token is presented (the phone handshake's check)."""
    return (await authorize(headers, service, admin_token, Role.WORKER)).device
