"""Shared fixtures. Broker tests find a real broker through the project's discovery order
(AMQP_URL, local node, start it, a container) and fail, never skip, when there is none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backbone.devtools.discovery import BrokerEndpoint, discover_broker
from backbone.errors import BrokerUnavailableError

REPO = Path(__file__).resolve().parents[1]
SHARED_EDXML = REPO.parent / "shared" / "interop" / "edxml"

# Started first: under `make test`'s workers (pytest -n 3) the longest test (~7 minutes of
# compressed alert timings) then runs beside the rest instead of after it.
LONGEST_FIRST = ("tests/test_prometheus_live.py::",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not item.nodeid.startswith(LONGEST_FIRST))


@pytest.fixture(scope="session")
def broker() -> Iterator[BrokerEndpoint]:
    try:
        endpoint = discover_broker(start=True, install=False, container=True)
    except BrokerUnavailableError as error:
        pytest.fail(error.message, pytrace=False)
    yield endpoint
    endpoint.stop()


@pytest.fixture(scope="session")
def amqp_url(broker: BrokerEndpoint) -> str:
    return broker.url


@pytest.fixture(scope="session")
def shared_edxml() -> Path:
    """The third-party sample folder, read in place; absent only outside CI."""
    if not SHARED_EDXML.is_dir():
        pytest.skip(f"{SHARED_EDXML} is absent (it is always there in CI)")
    return SHARED_EDXML
