"""Store contract, Open311: services, client keys and requests, on every backend."""

from __future__ import annotations

from dispatch.open311.models import (
    Attribute,
    AttributeValue,
    ClientKey,
    Contact,
    Datatype,
    ServiceDefinition,
    ServiceRequest,
)
from dispatch.stores.ports import Open311Store
from tests.dispatch.backends import Backend, add_job, add_org, new_id

DAY = 86_400.0


def store(backend: Backend) -> Open311Store:
    assert backend.stores.open311 is not None
    return backend.stores.open311


def pothole(org_id: str, code: str = "pothole", name: str = "Pothole") -> ServiceDefinition:
    return ServiceDefinition(
        org_id=org_id,
        code=code,
        name=name,
        description="A hole in the road",
        group="streets",
        keywords=("road", "hole"),
        skills=frozenset({"asphalt"}),
        attributes=(
            Attribute("depth", Datatype.NUMBER, "How deep, in cm?", required=True, order=1),
            Attribute(
                "lanes",
                Datatype.MULTIVALUELIST,
                "Which lanes?",
                order=2,
                values=(AttributeValue("l", "Left"), AttributeValue("r", "Right")),
            ),
        ),
        created_at=10.0,
        updated_at=10.0,
    )


def request(org_id: str, at: float, code: str = "pothole") -> ServiceRequest:
    return ServiceRequest(
        id=new_id("req"),
        org_id=org_id,
        token=new_id("tok"),
        service_code=code,
        service_name="Pothole",
        job_id=new_id("job"),
        lat=48.85,
        long=2.35,
        requested_at=at,
        description="deep",
        address="1 rue de Rivoli",
        attributes={"depth": "12", "lanes": ("l", "r")},
        contact=Contact(email="a@example.org", phone="+331"),
        client_id="o3k_1",
    )


async def test_a_service_is_created_then_replaced_and_read_back_whole(backend: Backend) -> None:
    """put_service says whether the code was new; the definition reads back as stored."""
    org = await add_org(backend.stores)
    first = pothole(org.id)
    assert await store(backend).put_service(first) is True
    assert await store(backend).get_service(org.id, "pothole") == first
    renamed = pothole(org.id, name="Road damage")
    assert await store(backend).put_service(renamed) is False
    assert await store(backend).get_service(org.id, "pothole") == renamed


async def test_services_are_listed_by_code_and_scoped_to_their_organisation(
    backend: Backend,
) -> None:
    """Each organisation sees its own services only, sorted by code, and can delete them."""
    org, other = await add_org(backend.stores), await add_org(backend.stores, "Other")
    for code in ("streetlight", "graffiti"):
        await store(backend).put_service(pothole(org.id, code))
    await store(backend).put_service(pothole(other.id, "pothole"))
    listed = await store(backend).list_services(org.id)
    assert [s.code for s in listed] == ["graffiti", "streetlight"]
    assert await store(backend).get_service(other.id, "graffiti") is None
    assert await store(backend).delete_service(other.id, "graffiti") is False
    assert await store(backend).delete_service(org.id, "graffiti") is True
    assert await store(backend).get_service(org.id, "graffiti") is None


async def test_a_client_key_is_found_by_its_hash_until_revoked(backend: Backend) -> None:
    """A key's hash finds it; another organisation cannot revoke it; once revoked it is gone."""
    org, other = await add_org(backend.stores), await add_org(backend.stores, "Other")
    key = ClientKey("o3k_" + new_id("k"), org.id, "City app", 12.0)
    await store(backend).add_key(key, "hash-1")
    assert await store(backend).key_by_hash("hash-1") == key
    assert await store(backend).revoke_key(other.id, key.id) is False
    assert await store(backend).revoke_key(org.id, key.id) is True
    assert await store(backend).key_by_hash("hash-1") is None
    assert await store(backend).revoke_key(org.id, key.id) is False


async def test_a_request_reads_back_by_id_and_token_in_its_organisation_only(
    backend: Backend,
) -> None:
    """The stored request, answers and contact included, is found by id and by token."""
    org, other = await add_org(backend.stores), await add_org(backend.stores, "Other")
    stored = request(org.id, 1000.0)
    await store(backend).add_request(stored)
    assert await store(backend).get_request(org.id, stored.id) == stored
    assert await store(backend).request_by_token(org.id, stored.token) == stored
    assert await store(backend).get_request(other.id, stored.id) is None
    assert await store(backend).request_by_token(other.id, stored.token) is None


async def test_requests_are_found_by_window_and_code_newest_first(backend: Backend) -> None:
    """The window includes both ends; codes filter; ids override the other filters."""
    org = await add_org(backend.stores)
    old = request(org.id, 100 * DAY)
    edge = request(org.id, 110 * DAY, "graffiti")
    new = request(org.id, 120 * DAY)
    for r in (old, edge, new):
        await store(backend).add_request(r)
    found = await store(backend).find_requests(org.id, since=110 * DAY, until=120 * DAY)
    assert [r.id for r in found] == [new.id, edge.id]
    coded = await store(backend).find_requests(org.id, codes=["pothole"])
    assert [r.id for r in coded] == [new.id, old.id]
    by_id = await store(backend).find_requests(
        org.id, ids=[old.id, "req_missing"], codes=["graffiti"], since=115 * DAY
    )
    assert [r.id for r in by_id] == [old.id]
    assert len(await store(backend).find_requests(org.id, limit=2)) == 2


async def test_jobs_are_read_in_one_batch_in_their_organisation_only(backend: Backend) -> None:
    """get_jobs answers the organisation's jobs among the ids, by id, and skips others."""
    org, other = await add_org(backend.stores), await add_org(backend.stores, "Other")
    first, second = await add_job(backend.stores, org.id), await add_job(backend.stores, org.id)
    foreign = await add_job(backend.stores, other.id)
    found = await backend.stores.jobs.get_jobs(org.id, [first.id, second.id, foreign.id, "job_x"])
    assert found == {
        first.id: await backend.stores.jobs.get_job(org.id, first.id),
        second.id: await backend.stores.jobs.get_job(org.id, second.id),
    }
    assert await backend.stores.jobs.get_jobs(org.id, []) == {}
