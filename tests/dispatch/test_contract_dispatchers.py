"""Store contract, dispatchers: the same behaviour from every backend."""

from __future__ import annotations

from dispatch.models import Dispatcher
from tests.dispatch.backends import Backend, add_org, new_id


def dispatcher(org_id: str, at: float = 100.0) -> Dispatcher:
    return Dispatcher(new_id("dsp"), org_id, "Dee", at)


async def test_a_dispatcher_is_found_by_token_and_listed_in_its_organisation(
    backend: Backend,
) -> None:
    """A stored dispatcher comes back by token hash and in its organisation's list only."""
    store = backend.stores.dispatchers
    mine, theirs = await add_org(backend.stores), await add_org(backend.stores)
    first, second = dispatcher(mine.id, 100.0), dispatcher(mine.id, 101.0)
    other = dispatcher(theirs.id)
    for d in (second, first, other):
        await store.add_dispatcher(d, f"hash-{d.id}")
    assert await store.dispatcher_by_token(f"hash-{first.id}") == first
    assert await store.dispatcher_by_token("hash-nobody") is None
    assert await store.dispatchers(mine.id) == [first, second]
    assert await store.dispatchers(theirs.id) == [other]


async def test_a_revoked_token_never_authenticates_again(backend: Backend) -> None:
    """Revoking stamps ``revoked_at`` once; the token is then nobody's, and the record stays."""
    store = backend.stores.dispatchers
    org = await add_org(backend.stores)
    d = dispatcher(org.id)
    await store.add_dispatcher(d, "hash-d")
    revoked = await store.revoke(org.id, d.id, 150.0)
    assert revoked is not None
    assert revoked.revoked_at == 150.0
    again = await store.revoke(org.id, d.id, 160.0)
    assert again is not None
    assert again.revoked_at == 150.0
    assert await store.dispatcher_by_token("hash-d") is None
    assert await store.dispatchers(org.id) == [revoked]


async def test_another_organisation_cannot_revoke(backend: Backend) -> None:
    """Revoking another organisation's dispatcher finds nothing and changes nothing."""
    store = backend.stores.dispatchers
    mine, theirs = await add_org(backend.stores), await add_org(backend.stores)
    d = dispatcher(theirs.id)
    await store.add_dispatcher(d, "hash-t")
    assert await store.revoke(mine.id, d.id, 150.0) is None
    assert await store.revoke(mine.id, "dsp_missing", 150.0) is None
    assert await store.dispatcher_by_token("hash-t") == d
