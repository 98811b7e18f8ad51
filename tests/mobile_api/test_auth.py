"""Authentication turns a secret into a principal; one place says 401 or 403, cheaply."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from starlette.datastructures import Headers

from dispatch.config import DispatchConfig
from dispatch.credentials import kind_of
from dispatch.models import WorkerKind
from dispatch.service import DispatchService
from dispatch.stores.memory import memory_stores
from mobile_api.auth import (
    LOOKUPS,
    NEEDS,
    Principal,
    Role,
    authenticate,
    authorize,
    require,
    require_worker,
)
from mobile_api.errors import ApiError

ADMIN = "operator-chosen-admin-token"


class Probes:
    """Counts the store reads that authentication makes, by store method."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def watch(self, target: object, name: str) -> None:
        inner: Callable[..., Awaitable[Any]] = getattr(target, name)

        async def counted(*args: Any) -> Any:
            self.calls[name] += 1
            return await inner(*args)

        setattr(target, name, counted)


@pytest.fixture
def service() -> DispatchService:
    return DispatchService(memory_stores(9), DispatchConfig(), time.time)


@pytest.fixture
def probes(service: DispatchService) -> Probes:
    probes = Probes()
    probes.watch(service.stores.orgs, "org_by_key")
    probes.watch(service.stores.workers, "worker_by_token")
    return probes


def status_of(call: Callable[[], object]) -> int:
    """The status of the ``ApiError`` that ``call`` raises."""
    with pytest.raises(ApiError) as raised:
        call()
    return raised.value.status


async def refused(call: Awaitable[object]) -> ApiError:
    """The ``ApiError`` that awaiting ``call`` raises."""
    with pytest.raises(ApiError) as raised:
        await call
    return raised.value


async def test_each_kind_of_secret_authenticates_as_its_role(service: DispatchService) -> None:
    """The admin token, an organisation key and a device token give their role and ids."""
    org, key = await service.create_org("Plant")
    worker, token = await service.create_worker(org.id, "Ann", WorkerKind.EMPLOYEE, ())
    assert await authenticate(ADMIN, service, ADMIN) == Principal(Role.ADMIN)
    assert await authenticate(key, service, ADMIN) == Principal(Role.ORG, org.id)
    device = await authenticate(token, service, ADMIN)
    assert device == Principal(Role.WORKER, org.id, worker.id)
    assert device.device.id == worker.id
    assert device.tenant == org.id


@pytest.mark.parametrize(
    "token",
    ["nope", "fck_", "fck_made_up", "fcw_made_up", "fcx_other_kind", "_fck", ADMIN + "x"],
)
async def test_a_secret_that_is_nobodys_is_401(service: DispatchService, token: str) -> None:
    """Made-up secrets, with a known prefix or none, are unknown: 401."""
    await service.create_org("Plant")
    assert (await refused(authenticate(token, service, ADMIN))).status == 401


async def test_a_secret_costs_at_most_one_store_probe(
    service: DispatchService, probes: Probes
) -> None:
    """The admin token and an unprefixed secret read no store; a key or device token reads
    only the store its prefix names, once."""
    org, key = await service.create_org("Plant")
    _, token = await service.create_worker(org.id, "Ann", WorkerKind.EMPLOYEE, ())
    await authenticate(ADMIN, service, ADMIN)
    await refused(authenticate("no-prefix", service, ADMIN))
    assert probes.calls == Counter()
    await authenticate(key, service, ADMIN)
    assert probes.calls == Counter(org_by_key=1)
    await authenticate(token, service, ADMIN)
    assert probes.calls == Counter(org_by_key=1, worker_by_token=1)


async def test_an_admin_token_with_a_known_prefix_is_still_the_admin(
    service: DispatchService, probes: Probes
) -> None:
    """An operator may pick an admin token that looks like a key: it authenticates as admin."""
    admin = "fck_chosen_by_the_operator"
    assert await authenticate(admin, service, admin) == Principal(Role.ADMIN)
    assert probes.calls == Counter()


async def test_the_secrets_the_service_hands_out_name_a_registered_lookup(
    service: DispatchService,
) -> None:
    """Every new key and token carries a prefix that ``LOOKUPS`` knows."""
    org, key = await service.create_org("Plant")
    _, token = await service.create_worker(org.id, "Ann", WorkerKind.EMPLOYEE, ())
    assert kind_of(key) in LOOKUPS
    assert kind_of(token) in LOOKUPS
    assert kind_of(key) != kind_of(token)


async def test_a_new_kind_of_secret_joins_by_its_prefix_alone(
    service: DispatchService, probes: Probes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prefix registered in ``LOOKUPS`` is authenticated by its own lookup, and no store
    that another prefix names is read for it."""
    asked: list[str] = []

    async def dispatcher_token(_: DispatchService, secret: str) -> Principal | None:
        asked.append(secret)
        return Principal(Role.ORG, "org_1") if secret == "fcd_known" else None

    monkeypatch.setitem(LOOKUPS, "fcd", dispatcher_token)
    assert await authenticate("fcd_known", service, ADMIN) == Principal(Role.ORG, "org_1")
    assert (await refused(authenticate("fcd_unknown", service, ADMIN))).status == 401
    assert asked == ["fcd_known", "fcd_unknown"]
    assert probes.calls == Counter()


def test_every_role_has_a_wording_for_its_403() -> None:
    """A new role cannot be added without saying what a refusal asks for."""
    assert set(NEEDS) == set(Role)


@pytest.mark.parametrize("role", list(Role))
def test_require_passes_the_named_roles_and_refuses_the_others_403(role: Role) -> None:
    """A principal passes ``require`` exactly when its role is among those named."""
    principal = Principal(role, None if role is Role.ADMIN else "org_1")
    assert require(principal, role) is principal
    assert require(principal, *Role) is principal
    others = [r for r in Role if r is not role]
    with pytest.raises(ApiError) as raised:
        require(principal, *others)
    assert raised.value.status == 403
    assert all(NEEDS[r] in raised.value.message for r in others)


def test_the_admin_has_no_tenant_and_only_a_device_has_a_worker() -> None:
    """Asking the admin for its organisation, or a key for its worker, answers 403."""
    assert status_of(lambda: Principal(Role.ADMIN).tenant) == 403
    assert status_of(lambda: Principal(Role.ORG, "org_1").device) == 403


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer  ", "Basic abc", "Bearer " + "x" * 513],
    ids=["missing", "blank", "no-token", "spaces", "scheme", "oversized"],
)
async def test_a_missing_or_malformed_header_is_401_before_any_lookup(
    service: DispatchService, probes: Probes, authorization: str | None
) -> None:
    """Without a well-formed ``Bearer`` header nothing is looked up and the answer is 401."""
    raw = [] if authorization is None else [(b"authorization", authorization.encode())]
    headers = Headers(raw=raw)
    error = await refused(authorize(headers, service, ADMIN, *Role))
    assert error.status == 401
    assert probes.calls == Counter()


async def test_the_phone_handshake_gets_its_worker_and_refuses_other_roles_403(
    service: DispatchService,
) -> None:
    """``require_worker`` returns the device's worker; a key or the admin token is 403."""
    org, key = await service.create_org("Plant")
    worker, token = await service.create_worker(org.id, "Ann", WorkerKind.EMPLOYEE, ())

    def headers(secret: str) -> Headers:
        return Headers({"authorization": f"Bearer {secret}"})

    assert (await require_worker(headers(token), service, ADMIN)).id == worker.id
    for secret in (key, ADMIN):
        assert (await refused(require_worker(headers(secret), service, ADMIN))).status == 403
