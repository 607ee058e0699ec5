"""Who the router tells about an envelope: never someone a forged header names."""

from __future__ import annotations

from backbone.directory import Directory, Hub
from backbone.envelope import EnvelopeHeader
from backbone.errors import BackboneError

__all__ = ["party_to_tell"]


def party_to_tell(
    directory: Directory,
    header: EnvelopeHeader | None,
    publisher: str | None,
    *,
    authenticated: bool,
) -> str | None:
    """Who to tell: the sender when its signature was checked, or when the publisher may
    publish for it; otherwise the publisher itself, so a forged header cannot aim events
    at another agency. ``None`` when nobody can be named."""
    if header is not None and authenticated:
        return header.sender
    if (
        header is not None
        and publisher
        and header.sender in directory
        and directory.serving_system(header.sender).broker_account == publisher
    ):
        return header.sender
    if not publisher:
        return None
    try:
        system = directory.system_of_account(publisher)
    except BackboneError:
        return None
    if isinstance(system, Hub):
        return str(system.serves[0])
    return str(system.organ_code)
