"""In-process ``Open311Store``: plain dicts, for one process (see ``memory``)."""

from __future__ import annotations

from collections.abc import Sequence

from ..open311.models import ClientKey, ServiceDefinition, ServiceRequest


class MemoryOpen311Store:
    """Services by (organisation, code), keys by hash, requests by id and token."""

    def __init__(self) -> None:
        self._services: dict[tuple[str, str], ServiceDefinition] = {}
        self._keys: dict[str, ClientKey] = {}
        self._key_ids: dict[str, str] = {}
        self._requests: dict[str, ServiceRequest] = {}
        self._tokens: dict[str, str] = {}

    async def put_service(self, service: ServiceDefinition) -> bool:
        where = (service.org_id, service.code)
        created = where not in self._services
        self._services[where] = service
        return created

    async def get_service(self, org_id: str, code: str) -> ServiceDefinition | None:
        return self._services.get((org_id, code))

    async def list_services(self, org_id: str) -> list[ServiceDefinition]:
        return sorted(
            (s for (org, _), s in self._services.items() if org == org_id), key=lambda s: s.code
        )

    async def delete_service(self, org_id: str, code: str) -> bool:
        return self._services.pop((org_id, code), None) is not None

    async def add_key(self, key: ClientKey, key_hash: str) -> None:
        self._keys[key_hash] = key
        self._key_ids[key.id] = key_hash

    async def key_by_hash(self, key_hash: str) -> ClientKey | None:
        return self._keys.get(key_hash)

    async def revoke_key(self, org_id: str, key_id: str) -> bool:
        key_hash = self._key_ids.get(key_id)
        key = None if key_hash is None else self._keys.get(key_hash)
        if key is None or key.org_id != org_id or key_hash is None:
            return False
        del self._keys[key_hash], self._key_ids[key_id]
        return True

    async def add_request(self, request: ServiceRequest) -> None:
        self._requests[request.id] = request
        self._tokens[request.token] = request.id

    async def get_request(self, org_id: str, request_id: str) -> ServiceRequest | None:
        found = self._requests.get(request_id)
        return found if found is not None and found.org_id == org_id else None

    async def request_by_token(self, org_id: str, token: str) -> ServiceRequest | None:
        request_id = self._tokens.get(token)
        return None if request_id is None else await self.get_request(org_id, request_id)

    async def find_requests(
        self,
        org_id: str,
        *,
        ids: Sequence[str] | None = None,
        codes: Sequence[str] | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[ServiceRequest]:
        if ids is not None:
            found = [r for i in dict.fromkeys(ids) if (r := self._requests.get(i)) is not None]
            hits = [r for r in found if r.org_id == org_id]
        else:
            hits = [
                r
                for r in self._requests.values()
                if r.org_id == org_id
                and (codes is None or r.service_code in codes)
                and (since is None or r.requested_at >= since)
                and (until is None or r.requested_at <= until)
            ]
        hits.sort(key=lambda r: (r.requested_at, r.id), reverse=True)
        return hits[:limit]
