"""The Open311 application service: services, client keys, and requests that become jobs.

``Open311Service`` is what the edge calls for ``/v1/services``,
``/v1/open311/keys`` and the GeoReport endpoints. Rules for callers:

* Scope every call by the organisation as authenticated (an organisation
  key, an Open311 client key) or, for the public GeoReport reads, by the
  ``jurisdiction_id`` checked with ``jurisdiction``; foreign ids answer
  ``NotFound``.
* ``submit`` takes a location already resolved to coordinates (the edge
  geocodes an address); it stores the dispatch job first — offered to nearby
  technicians at once, ``external_ref`` the request's id — then the request.
* Views are computed from the job on every read (``status``): nothing about
  a request's progress is stored twice. A state change of a request is a
  state change of its job; the webhook deliverer will add an
  ``open311.request_updated`` effect kind beside the job's effects
  (``dispatch.effects``), keyed by ``external_ref``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..credentials import digest, new_secret
from ..errors import InvalidInput, NotFound
from ..models import Fix, Job, JobState, Organisation
from ..service import DispatchService
from ..stores.ports import Open311Store, Stores
from .models import ClientKey, Contact, ServiceDefinition, ServiceRequest
from .status import Progress, request_view, status_of
from .validation import check_answers, check_definition

OPEN311_KEY = "fco"
"""Prefix of an Open311 client key (``dispatch.credentials``' scheme of prefixes)."""

MAX_RESULTS = 1000
"""At most this many requests per ``GET requests`` (the specification's volume)."""

WINDOW_S = 90 * 86_400.0
"""The default and widest ``GET requests`` window: 90 days."""


def store_of(stores: Stores) -> Open311Store:
    """The backend's Open311 store; ``RuntimeError`` for a backend built without one."""
    if stores.open311 is None:
        raise RuntimeError("this backend has no Open311 store")
    return stores.open311


async def client_for_secret(stores: Stores, secret: str) -> ClientKey | None:
    """The live Open311 client key ``secret`` is, if any (by its digest)."""
    return await store_of(stores).key_by_hash(digest(secret))


@dataclass(frozen=True, slots=True)
class Submission:
    """A citizen's request as the edge read it, location resolved."""

    service_code: str
    lat: float
    long: float
    description: str = ""
    address: str = ""
    address_id: str = ""
    zipcode: str = ""
    media_url: str = ""
    attributes: Mapping[str, Sequence[str]] | None = None
    listed: frozenset[str] = frozenset()
    """Attribute codes sent as ``attribute[code][]``."""
    contact: Contact = field(default_factory=Contact)


class Open311Service:
    """Open311 on top of dispatch; see the module docstring."""

    def __init__(self, dispatch: DispatchService, travel_speed_mps: float) -> None:
        self.dispatch = dispatch
        self.store = store_of(dispatch.stores)
        self.travel_speed_mps = travel_speed_mps

    # -- services --------------------------------------------------------------

    async def put_service(self, service: ServiceDefinition) -> tuple[ServiceDefinition, bool]:
        """Create or replace a service; returns it as stored and whether it was new."""
        now = self.dispatch.clock()
        check_definition(service)
        old = await self.store.get_service(service.org_id, service.code)
        stored = replace(
            service,
            created_at=now if old is None else old.created_at,
            updated_at=now,
            skills=frozenset(s.strip().lower() for s in service.skills),
        )
        created = await self.store.put_service(stored)
        return stored, created

    async def services(self, org_id: str) -> list[ServiceDefinition]:
        """The organisation's services, by code."""
        return await self.store.list_services(org_id)

    async def service(self, org_id: str, code: str) -> ServiceDefinition:
        """One service, or ``NotFound``."""
        found = await self.store.get_service(org_id, code)
        if found is None:
            raise NotFound("service", code)
        return found

    async def delete_service(self, org_id: str, code: str) -> None:
        """Forget a service (its requests stay); ``NotFound`` if there is none."""
        if not await self.store.delete_service(org_id, code):
            raise NotFound("service", code)

    # -- client keys -----------------------------------------------------------

    async def create_key(self, org_id: str, name: str) -> tuple[ClientKey, str]:
        """A new client key and its secret (returned once, stored hashed)."""
        key = ClientKey(self.dispatch.new_id("o3k"), org_id, name, self.dispatch.clock())
        secret = new_secret(OPEN311_KEY)
        await self.store.add_key(key, digest(secret))
        return key, secret

    async def revoke_key(self, org_id: str, key_id: str) -> None:
        """Revoke a key at once; ``NotFound`` if the organisation has no such live key."""
        if not await self.store.revoke_key(org_id, key_id):
            raise NotFound("open311 key", key_id)

    # -- requests --------------------------------------------------------------

    async def jurisdiction(self, org_id: str) -> Organisation:
        """The organisation a ``jurisdiction_id`` names, or ``NotFound``."""
        org = await self.dispatch.stores.orgs.get_org(org_id)
        if org is None:
            raise NotFound("jurisdiction", org_id)
        return org

    async def submit(self, client: ClientKey, sub: Submission) -> ServiceRequest:
        """Check the answers, dispatch a job for the request, then store the request."""
        service = await self.service(client.org_id, sub.service_code)
        answers = check_answers(service, sub.attributes or {}, sub.listed)
        if len(sub.description) > 4000:
            raise InvalidInput("description is at most 4000 characters")
        request_id = self.dispatch.new_id("req")
        job = await self.dispatch.post_job(
            client.org_id,
            service.name,
            sub.lat,
            sub.long,
            service.skills,
            0,
            sub.description,
            request_id,
        )
        request = ServiceRequest(
            id=request_id,
            org_id=client.org_id,
            token=new_secret("tok"),
            service_code=service.code,
            service_name=service.name,
            job_id=job.id,
            lat=sub.lat,
            long=sub.long,
            requested_at=job.created_at,
            description=sub.description,
            address=sub.address,
            address_id=sub.address_id,
            zipcode=sub.zipcode,
            media_url=sub.media_url,
            attributes={k: v if isinstance(v, str) else tuple(v) for k, v in answers.items()},
            contact=sub.contact,
            client_id=client.id,
        )
        await self.store.add_request(request)
        return request

    async def request(self, org_id: str, request_id: str) -> ServiceRequest:
        """One request, or ``NotFound``."""
        found = await self.store.get_request(org_id, request_id)
        if found is None:
            raise NotFound("service request", request_id)
        return found

    async def by_token(self, org_id: str, token: str) -> ServiceRequest:
        """The request a token was handed out for, or ``NotFound``."""
        found = await self.store.request_by_token(org_id, token)
        if found is None:
            raise NotFound("token", token)
        return found

    async def view(
        self,
        org: Organisation,
        request: ServiceRequest,
        job: Job | None = None,
        crew_fix: Fix | None = None,
    ) -> dict[str, Any]:
        """The request's live GeoReport view (``status.request_view``).

        ``job`` and ``crew_fix`` save reads when the caller has them (``find``
        reads them for a whole list at once). The job's history is read only
        while the crew is on site (for the arrival time), the crew's last fix
        only while it is assigned or on its way (for the ETA).
        """
        if job is None:
            job = await self.dispatch.stores.jobs.get_job(org.id, request.job_id)
            if job is None:
                raise NotFound("service request", request.id)
        if crew_fix is None and job.worker_id is not None and job.state in _ON_THE_WAY:
            crew_fix = (await self._fixes([job.worker_id])).get(job.worker_id)
        history = []
        if job.state is JobState.ON_SITE:
            history = await self.dispatch.stores.jobs.history(org.id, job.id)
        progress = Progress(history, crew_fix)
        return request_view(request, job, progress, org.name, self.travel_speed_mps)

    async def _fixes(self, worker_ids: Sequence[str]) -> dict[str, Fix]:
        crew = await self.dispatch.stores.workers.get_workers(worker_ids)
        return {w.id: w.fix for w in crew.values() if w.fix is not None}

    async def find(
        self,
        org: Organisation,
        *,
        ids: Sequence[str] | None = None,
        codes: Sequence[str] | None = None,
        since: float | None = None,
        until: float | None = None,
        statuses: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Views of the requests ``GET requests`` asks for (the edge fills in the window).

        Reads the requests, their jobs and their crews' fixes in one batch each.
        """
        found = await self.store.find_requests(
            org.id, ids=ids, codes=codes, since=since, until=until, limit=MAX_RESULTS
        )
        jobs = await self.dispatch.stores.jobs.get_jobs(org.id, [r.job_id for r in found])
        moving = [j.worker_id for j in jobs.values() if j.worker_id and j.state in _ON_THE_WAY]
        fixes = await self._fixes(moving) if moving else {}
        views = []
        for request in found:
            job = jobs.get(request.job_id)
            if job is None:
                continue
            if ids is None and statuses is not None and status_of(job) not in statuses:
                continue
            fix = None if job.worker_id is None else fixes.get(job.worker_id)
            views.append(await self.view(org, request, job, fix))
        return views


_ON_THE_WAY = frozenset({JobState.ASSIGNED, JobState.EN_ROUTE})
