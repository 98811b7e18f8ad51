"""What one running server holds: the service, its mode and open sessions.

Built and torn down by the app's lifespan (``app.lifespan``); handlers reach
it as ``request.app.state.runtime``. Nothing here opens connections itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from dispatch.errors import Unavailable
from dispatch.open311.service import Open311Service
from dispatch.service import DispatchService
from dispatch.stores.ports import Presence

from .departures import Departures
from .open311.geocoding import Geocoder
from .presence import PresenceKeeper
from .protocol.frames import CLOSE_SUPERSEDED
from .protocol.phone import PhoneConfig
from .settings import Settings


class Session:
    """One connected socket of a worker, as the runtime and the presence keeper see it.

    Subclasses implement ``close`` (once, whoever asks); ``supersede`` closes
    with 4001 when the worker connected again.
    """

    __slots__ = ("claimed", "holder", "open", "worker_id")

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.open = True
        """False once the socket is closed by either side: nothing more is sent."""
        self.holder = ""
        """This socket's name in ``Presence`` (set before ``PresenceKeeper.hold``)."""
        self.claimed = False
        """The presence claim was made (``PresenceKeeper`` keeps it while open)."""

    async def close(self, code: int, reason: str) -> None:
        """Close the socket with ``code`` and ``reason``."""
        raise NotImplementedError

    async def supersede(self) -> None:
        await self.close(CLOSE_SUPERSEDED, "superseded by a newer connection")


@dataclass
class Runtime:
    """The live objects of one server process.

    ``keeper`` and ``phone`` are derived from the others; ``await
    keeper.aclose()`` at shutdown.
    """

    settings: Settings
    service: DispatchService
    admin_token: str
    mode: str
    presence: Presence
    """Which socket holds which worker: across instances in production (Redis),
    in this process otherwise (``MemoryPresence``)."""
    ping: Callable[[], Awaitable[None]] | None = None
    """Checks the backing services answer (raises ``Unavailable``); None in-process."""
    instance_id: str = "local"
    sessions: dict[str, Session] = field(default_factory=dict)
    received: defaultdict[type, int] = field(default_factory=lambda: defaultdict(int))
    """Text frames the phone sockets read, by the protocol call they made (``metrics``)."""
    departures: Departures = field(default_factory=Departures)
    """Phones whose socket closed here; forgotten by ``forget_departed``."""
    keeper: PresenceKeeper = field(init=False)
    """Claims and refreshes ``presence`` for every open socket."""
    phone: PhoneConfig = field(init=False)
    """What every phone socket shares (``protocol.phone``)."""
    open311: Open311Service = field(init=False)
    """Open311 services, client keys and requests (needs ``service.stores.open311``)."""
    geocoder: Geocoder | None = field(init=False)
    """The geocoder of ``FIELDCLOUD_GEOCODER``, if one is configured."""

    def __post_init__(self) -> None:
        self.keeper = PresenceKeeper(self.presence, self.sessions, self.settings.presence_refresh_s)
        self.phone = PhoneConfig(
            offer_timeout_s=self.service.config.offer_timeout_s,
            max_frame_bytes=self.settings.max_frame_bytes,
            clock=self.service.clock,
        )
        self.open311 = Open311Service(self.service, self.settings.travel_speed_kmh / 3.6)
        self.geocoder = Geocoder.from_settings(self.settings)

    async def register(self, session: Session) -> None:
        """Make ``session`` the worker's only one here, closing an older one."""
        old = self.sessions.get(session.worker_id)
        self.sessions[session.worker_id] = session
        self.departures.returned(session.worker_id)
        if old is not None:
            await old.supersede()

    async def connected(self, worker_id: str) -> bool | None:
        """Whether the worker's phone holds a socket now, on any instance (None: unknown).

        This instance's sessions say it first; a socket elsewhere is seen
        through ``presence``, and None is the answer while Redis is away.
        """
        session = self.sessions.get(worker_id)
        if session is not None and session.open:
            return True
        try:
            return await self.presence.holder(worker_id) is not None
        except Unavailable:
            return None

    def left(self, session: Session, org_id: str) -> None:
        """``session`` closed: unregister it, and if it was the worker's current one,
        note the departure (see ``departures``)."""
        if self.sessions.get(session.worker_id) is session:
            del self.sessions[session.worker_id]
            self.departures.left(session.worker_id, org_id, self.service.clock())

    async def forget_departed(self) -> list[str]:
        """Forget the position of every worker gone longer than ``disconnect_forget_s``.

        A worker connected again, here or on another instance, keeps it. When
        it cannot be told (Redis away) or the position not deleted, the
        departure is kept for the next sweep and ``Unavailable`` raised.
        Returns the ids of the workers forgotten.
        """
        forgotten: list[str] = []
        due = self.departures.due(self.service.clock(), self.settings.disconnect_forget_s)
        for n, gone in enumerate(due):
            back = await self.connected(gone.worker_id)
            if back:
                continue
            try:
                if back is None:
                    raise Unavailable("presence unknown; forgetting later")
                await self.service.forget_position(gone.org_id, gone.worker_id)
            except Unavailable:
                for later in due[n:]:
                    if later.worker_id not in self.sessions:
                        self.departures.left(later.worker_id, later.org_id, later.at)
                raise
            forgotten.append(gone.worker_id)
        return forgotten
