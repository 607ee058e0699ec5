"""edXML's XML names. Prefixed and unprefixed elements are one namespace to lxml."""

from __future__ import annotations

from functools import cache

__all__ = ["NAMESPACE", "PREFIX", "q", "qpath"]

NAMESPACE = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
PREFIX = "edXML"


@cache
def q(local_name: str) -> str:
    """The Clark name ``{namespace}local_name`` lxml uses for an edXML element."""
    return f"{{{NAMESPACE}}}{local_name}"


@cache
def qpath(*local_names: str) -> str:
    """An ElementPath of edXML child steps, for lxml's ``find``/``findall`` (kept per path:
    the checks build the same dozen paths for every document)."""
    return "/".join(q(name) for name in local_names)
