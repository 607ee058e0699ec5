"""pytest fixtures over :mod:`testkit`. A test module uses one by importing it (pytest
registers fixtures found in a test module's namespace)::

    from tests.support import Deployment, adapter_deployment_fixture  # noqa: F401

    async def test_something(adapter_deployment: Deployment) -> None: ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from testkit.deployment import Deployment, open_deployment

__all__ = ["adapter_deployment_fixture"]


@pytest.fixture(name="adapter_deployment")
async def adapter_deployment_fixture(amqp_url: str, tmp_path: Path) -> AsyncIterator[Deployment]:
    async with open_deployment(amqp_url, tmp_path) as deployment:
        yield deployment
