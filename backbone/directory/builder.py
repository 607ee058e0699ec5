"""A small directory built in code, for tests and examples.

    directory = (
        DirectoryBuilder()
        .direct("000.00.00.G22")
        .hub("00.53.W00", "000.00.00.H53")
        .via_hub("000.00.32.H53", "00.53.W00")
        .build()
    )

Names and broker accounts default from the code (see :func:`agency_account`). Version-2
fields (``status``, ``closes``, ``successors``, ...) pass through as keywords, and the
directory is built as the oldest file version having every field used."""

from __future__ import annotations

from typing import Any

from backbone.directory.index import Directory
from backbone.tiers import TierModel

__all__ = ["DirectoryBuilder", "agency_account", "hub_account"]


def agency_account(organ_code: str) -> str:
    """The broker account convention for a directly connected agency."""
    return f"agency-{organ_code}"


def hub_account(hub_id: str) -> str:
    """The broker account convention for a hub."""
    return f"hub-{hub_id}"


class DirectoryBuilder:
    def __init__(self, *, tiers: str | TierModel | list[Any] | None = None) -> None:
        self._tiers = tiers
        self._hubs: list[dict[str, Any]] = []
        self._agencies: list[dict[str, Any]] = []

    def hub(
        self,
        hub_id: str,
        *serves: str,
        name: str | None = None,
        broker_account: str | None = None,
        certificate: str | None = None,
        **version_2: Any,
    ) -> DirectoryBuilder:
        """A hub serving the subtrees of ``serves``."""
        self._hubs.append(
            {
                "id": hub_id,
                "name": name or f"Hub {hub_id}",
                "serves": list(serves),
                "broker_account": broker_account or hub_account(hub_id),
                "certificate": certificate,
                **version_2,
            }
        )
        return self

    def direct(
        self,
        organ_code: str,
        *,
        name: str | None = None,
        broker_account: str | None = None,
        certificate: str | None = None,
        active: bool = True,
        **version_2: Any,
    ) -> DirectoryBuilder:
        """An agency whose own software holds a broker account."""
        self._agencies.append(
            {
                "organ_code": organ_code,
                "name": name or f"Agency {organ_code}",
                "connection": "direct",
                "broker_account": broker_account or agency_account(organ_code),
                "certificate": certificate,
                **_inactive(active),
                **version_2,
            }
        )
        return self

    def via_hub(
        self,
        organ_code: str,
        hub_id: str,
        *,
        name: str | None = None,
        certificate: str | None = None,
        active: bool = True,
        **version_2: Any,
    ) -> DirectoryBuilder:
        """An agency connected through hub ``hub_id``."""
        self._agencies.append(
            {
                "organ_code": organ_code,
                "name": name or f"Agency {organ_code}",
                "connection": "hub",
                "hub": hub_id,
                "certificate": certificate,
                **_inactive(active),
                **version_2,
            }
        )
        return self

    def build(self) -> Directory:
        """The validated directory; :class:`DirectoryError` as loading a file would raise."""
        return Directory.from_entries(self._agencies, self._hubs, tiers=self._tiers)


def _inactive(active: bool) -> dict[str, Any]:
    # Version 1's flag, written only when false: a version-2 file says status: closed.
    return {} if active else {"active": False}
