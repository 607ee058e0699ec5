"""``sendEdoc``'s ``to`` as the vendor SDK hands it on: the caller's JSON value written back
as JSON text (Gson's ``toString()``), so an array arrives as ``["A","B"]`` and a string
quotes and all, ``"A,B"``. A take-back (13) names no recipient in its edXML: ``to`` is
where it goes, in either form."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from backbone.clock import edxml_now
from backbone.edxml import EdxmlStatus, Organization, ResponseFor, StatusCode, build
from testkit import Deployment, document_edxml, document_id
from tests.support import adapter_deployment_fixture  # noqa: F401
from tests.support.gateway import running_gateway

pytestmark = pytest.mark.clock  # document ids carry the Vietnam date, from backbone.clock

A, B, C = "000.00.00.G22", "000.00.00.H41", "000.00.05.G01"
_T = TypeVar("_T")


async def call(function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """The SDK is blocking; the gateway runs on this loop."""
    return await asyncio.to_thread(function, *args, **kwargs)


def take_back(number: int) -> bytes:
    return build(
        EdxmlStatus(
            sender=Organization(organ_id=A, organ_name=f"Agency {A}"),
            response_for=ResponseFor(organ_id=A, document_id=document_id(A, number)),
            status_code=StatusCode.TAKE_BACK_REQUESTED,
            timestamp=edxml_now(),
            description="Gửi nhầm",
        )
    )


@pytest.mark.parametrize(
    "to", [[B, C], f"{B},{C}", f" {B} , {C} "], ids=["array", "string", "spaced"]
)
async def test_a_take_back_reaches_every_agency_named_in_to_whichever_json_form_it_takes(
    adapter_deployment: Deployment, tmp_path: Path, to: list[str] | str
) -> None:
    async with running_gateway(adapter_deployment, A, tmp_path / "a") as gateway:
        sdk = gateway.sdk()
        sent = await call(sdk.send_edoc, document_edxml(A, [B, C], 1), sender=A)
        assert sent is not None
        assert sent["status"] == "OK", sent

        answer = await call(sdk.send_edoc, take_back(1), sender=A, message_type="status", to=to)
        assert answer is not None
        assert (answer["status"], answer["ErrorCode"]) == ("OK", "0"), answer

        deadline = asyncio.get_running_loop().time() + 20
        while True:
            listed = await call(sdk.sent_list, answer["DocId"], "status")
            assert listed is not None
            rows = {row["toCode"]: row["sendStatus"] for row in listed["data"]}
            if rows == {B: "routed", C: "routed"}:
                break
            assert asyncio.get_running_loop().time() < deadline, listed
            await asyncio.sleep(0.2)
