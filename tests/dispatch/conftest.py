"""Fixtures of the store contract tests: every backend, and the services production needs.

``backend`` runs a test once per backend of ``BACKENDS`` (memory, then
PostgreSQL + Redis); ``services`` is the module's own database and key prefix
for the production backend, created on first use and dropped after the
module. A module may override ``backend`` (``test_contract_production`` runs
on production only).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.dispatch.backends import BACKENDS, Backend, ServiceEnv, open_backend, service_env


@pytest.fixture(scope="module")
def services() -> Iterator[ServiceEnv]:
    yield from service_env()


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    env = request.getfixturevalue("services") if request.param == "production" else None
    async with open_backend(request.param, env) as opened:
        yield opened
