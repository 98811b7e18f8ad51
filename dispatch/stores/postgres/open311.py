"""PostgreSQL ``Open311Store``: ``open311_services``, ``open311_keys``, ``open311_requests``.

Tables are created by migration ``0011_open311.sql``. A service's attributes
and a request's answers and contact details are jsonb documents, read and
written whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import asyncpg

from ...open311.models import (
    Attribute,
    AttributeValue,
    ClientKey,
    Contact,
    Datatype,
    ServiceDefinition,
    ServiceRequest,
)
from .pool import Q

__all__ = ["PgOpen311Store"]

_PUT_SERVICE = """
INSERT INTO open311_services
    (org_id, code, name, description, grp, keywords, skills, attributes, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (org_id, code) DO UPDATE SET
    name = EXCLUDED.name, description = EXCLUDED.description, grp = EXCLUDED.grp,
    keywords = EXCLUDED.keywords, skills = EXCLUDED.skills, attributes = EXCLUDED.attributes,
    updated_at = EXCLUDED.updated_at
RETURNING (xmax = 0) AS created
"""

_REQUEST_COLUMNS = (
    "id, org_id, token, service_code, service_name, job_id, lat, long, requested_at,"
    " description, address, address_id, zipcode, media_url, attributes, contact, client_id"
)
_SELECT_REQUEST = f"SELECT {_REQUEST_COLUMNS} FROM open311_requests"


class PgOpen311Store:
    """Open311 records in PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._q = Q(pool)

    async def put_service(self, service: ServiceDefinition) -> bool:
        created: bool = await self._q.fetchval(
            _PUT_SERVICE,
            service.org_id,
            service.code,
            service.name,
            service.description,
            service.group,
            list(service.keywords),
            sorted(service.skills),
            [_attribute_doc(a) for a in service.attributes],
            service.created_at,
            service.updated_at,
        )
        return created

    async def get_service(self, org_id: str, code: str) -> ServiceDefinition | None:
        row = await self._q.fetchrow(
            "SELECT * FROM open311_services WHERE org_id = $1 AND code = $2", org_id, code
        )
        return None if row is None else _service(row)

    async def list_services(self, org_id: str) -> list[ServiceDefinition]:
        rows = await self._q.fetch(
            "SELECT * FROM open311_services WHERE org_id = $1 ORDER BY code", org_id
        )
        return [_service(r) for r in rows]

    async def delete_service(self, org_id: str, code: str) -> bool:
        status = await self._q.execute(
            "DELETE FROM open311_services WHERE org_id = $1 AND code = $2", org_id, code
        )
        return status != "DELETE 0"

    async def add_key(self, key: ClientKey, key_hash: str) -> None:
        await self._q.execute(
            "INSERT INTO open311_keys (id, org_id, name, key_hash, created_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            key.id,
            key.org_id,
            key.name,
            key_hash,
            key.created_at,
        )

    async def key_by_hash(self, key_hash: str) -> ClientKey | None:
        row = await self._q.fetchrow(
            "SELECT id, org_id, name, created_at FROM open311_keys"
            " WHERE key_hash = $1 AND revoked_at IS NULL",
            key_hash,
        )
        return None if row is None else ClientKey(**dict(row))

    async def revoke_key(self, org_id: str, key_id: str) -> bool:
        status = await self._q.execute(
            "UPDATE open311_keys SET revoked_at = extract(epoch FROM now())"
            " WHERE id = $1 AND org_id = $2 AND revoked_at IS NULL",
            key_id,
            org_id,
        )
        return status != "UPDATE 0"

    async def add_request(self, request: ServiceRequest) -> None:
        await self._q.execute(
            f"INSERT INTO open311_requests ({_REQUEST_COLUMNS}) VALUES"
            " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            request.id,
            request.org_id,
            request.token,
            request.service_code,
            request.service_name,
            request.job_id,
            request.lat,
            request.long,
            request.requested_at,
            request.description,
            request.address,
            request.address_id,
            request.zipcode,
            request.media_url,
            {k: v if isinstance(v, str) else list(v) for k, v in request.attributes.items()},
            asdict(request.contact),
            request.client_id,
        )

    async def get_request(self, org_id: str, request_id: str) -> ServiceRequest | None:
        row = await self._q.fetchrow(
            f"{_SELECT_REQUEST} WHERE id = $1 AND org_id = $2", request_id, org_id
        )
        return None if row is None else _request(row)

    async def request_by_token(self, org_id: str, token: str) -> ServiceRequest | None:
        row = await self._q.fetchrow(
            f"{_SELECT_REQUEST} WHERE token = $1 AND org_id = $2", token, org_id
        )
        return None if row is None else _request(row)

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
            rows = await self._q.fetch(
                f"{_SELECT_REQUEST} WHERE org_id = $1 AND id = ANY($2::text[])"
                " ORDER BY requested_at DESC, id DESC LIMIT $3",
                org_id,
                list(ids),
                limit,
            )
        else:
            rows = await self._q.fetch(
                f"{_SELECT_REQUEST} WHERE org_id = $1"
                " AND ($2::text[] IS NULL OR service_code = ANY($2::text[]))"
                " AND ($3::float8 IS NULL OR requested_at >= $3)"
                " AND ($4::float8 IS NULL OR requested_at <= $4)"
                " ORDER BY requested_at DESC, id DESC LIMIT $5",
                org_id,
                None if codes is None else list(codes),
                since,
                until,
                limit,
            )
        return [_request(r) for r in rows]


def _attribute_doc(attr: Attribute) -> dict[str, Any]:
    doc = asdict(attr)
    doc["datatype"] = attr.datatype.value
    return doc


def _attribute(doc: Mapping[str, Any]) -> Attribute:
    return Attribute(
        code=doc["code"],
        datatype=Datatype(doc["datatype"]),
        description=doc["description"],
        required=doc["required"],
        variable=doc["variable"],
        datatype_description=doc["datatype_description"],
        order=doc["order"],
        values=tuple(AttributeValue(v["key"], v["name"]) for v in doc["values"]),
    )


def _service(row: asyncpg.Record) -> ServiceDefinition:
    return ServiceDefinition(
        org_id=row["org_id"],
        code=row["code"],
        name=row["name"],
        description=row["description"],
        group=row["grp"],
        keywords=tuple(row["keywords"]),
        skills=frozenset(row["skills"]),
        attributes=tuple(_attribute(a) for a in row["attributes"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _request(row: asyncpg.Record) -> ServiceRequest:
    values = dict(row)
    values["attributes"] = {
        k: v if isinstance(v, str) else tuple(v) for k, v in values["attributes"].items()
    }
    values["contact"] = Contact(**values["contact"])
    return ServiceRequest(**values)
