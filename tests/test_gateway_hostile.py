"""The gateway's hostile requests (``tests/hostile/gateway_cases.py``) against real gateways
on the real broker and router: each is refused with its exact ``ErrorCode``, in the shape the
SDK reads, nothing of a refused send is recorded, published or delivered, and the gateway
serves a valid request right after. Then the broker goes away under a ``sendEdoc``."""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from pydantic import SecretStr

from adapters.config import AdapterConfig, GatewaySystem
from backbone.errors import Reason
from testkit import Deployment, document_edxml, open_deployment
from tests.faults.proxy import TcpProxy
from tests.hostile.gateway_build import (
    BUILDERS,
    DIRECT_AGENCY,
    DIRECT_RECIPIENT,
    HUB_A_AGENCY,
    HUB_B_AGENCY,
    HostileRequest,
    Kit,
    Party,
    missing_builders,
)
from tests.hostile.gateway_cases import GATEWAY_CASES, GatewayCase, Target
from tests.support import adapter_deployment_fixture  # noqa: F401
from tests.support.gateway import serving
from tests.support.ports import free_port

pytestmark = [pytest.mark.broker, pytest.mark.clock]  # document ids carry Vietnam's date

HUB = "00.53.W00"
# The direct gateway's max_envelope_bytes and max_document_bytes, so "too large" stays small.
MAX_BODY = 256 * 1024
_T = TypeVar("_T")


async def call(function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """HTTP clients are blocking here; the gateways run on this loop."""
    return await asyncio.to_thread(function, *args, **kwargs)


def gateway_config(
    deployment: Deployment,
    system: str,
    root: Path,
    systems: Mapping[str, Sequence[str]],
    **overrides: object,
) -> tuple[AdapterConfig, dict[str, str]]:
    """``system``'s adapter with a gateway serving ``systems`` (systemid: acts_for), with
    their secrets."""
    base = deployment.config(system)
    root.mkdir(parents=True, exist_ok=True)
    keys, entries = {}, []
    for system_id, acts_for in systems.items():
        keys[system_id] = secrets.token_hex(16)
        secret_file = root / f"{system_id}.secret"
        secret_file.write_text(keys[system_id] + "\n")
        entries.append(
            GatewaySystem(systemid=system_id, secret_file=secret_file, acts_for=tuple(acts_for))
        )
    config = base.model_copy(
        update={
            "gateway_port": free_port(),
            "gateway_state": root / "state",
            "gateway_systems": tuple(entries),
            **overrides,
        }
    )
    return config, keys


def party(config: AdapterConfig, keys: Mapping[str, str], system_id: str) -> Party:
    return Party(f"http://127.0.0.1:{config.gateway_port}", system_id, keys[system_id])


def answer(response: httpx.Response) -> dict[str, Any]:
    if response.request.url.path.endswith("/downloadEdoc"):
        # Refused with an empty body (the SDK would save any body as the document) and
        # the fields in headers.
        assert response.content == b"", response.content[:200]
        return {
            name: response.headers.get(f"XroadVnpt-{name}")
            for name in ("status", "ErrorCode", "ErrorDesc")
        }
    found = response.json()
    assert isinstance(found, dict), response.text
    return found


def ok(found: dict[str, Any] | None) -> dict[str, Any]:
    assert found is not None, "the SDK would hand its caller null"
    assert (found["status"], found["ErrorCode"]) == ("OK", "0"), found
    return found


def post(request: HostileRequest, endpoint: str) -> httpx.Response:
    body = request.body() if callable(request.body) else request.body
    with httpx.Client(timeout=60) as http:
        return http.request(
            request.method, f"{endpoint}/{request.operation}", headers=request.headers, content=body
        )


@dataclass
class World:
    kit: Kit
    recipient: Party  # H41's gateway: every direct send goes there
    sent: dict[str, set[str]] = field(default_factory=dict)  # system -> DocIds sent validly
    delivered: set[str] = field(default_factory=set)  # DocumentIds H41 must receive

    def party(self, target: Target) -> Party:
        return self.kit.direct if target is Target.DIRECT else self.kit.hub_b

    async def valid_send(self, target: Target) -> None:
        if target is Target.DIRECT:
            sender, number = self.kit.direct, self.kit.number()
            edxml = document_edxml(DIRECT_AGENCY, [DIRECT_RECIPIENT], number)
            reply = ok(await call(sender.sdk().send_edoc, edxml, sender=DIRECT_AGENCY))
            self.delivered.add(_document_id(edxml))
        else:
            sender = self.kit.hub_a
            edxml = document_edxml(HUB_A_AGENCY, [DIRECT_AGENCY], self.kit.number())
            reply = ok(await call(sender.sdk().send_edoc, edxml, sender=HUB_A_AGENCY))
        assert reply["DocId"]
        self.sent.setdefault(sender.system_id, set()).add(reply["DocId"])

    async def recorded_sends(self) -> dict[str, set[str]]:
        """Every system's sent list as the gateway answers it."""
        found = {}
        for each in (self.kit.direct, self.kit.hub_a, self.kit.hub_b):
            listing = ok(await call(each.sdk().sent_list, "", ""))
            found[each.system_id] = {row["senderDocId"] for row in listing["data"]}
        return found


@pytest.fixture(scope="module")
async def world(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    root = tmp_path_factory.mktemp("gateway-hostile")
    async with open_deployment(amqp_url, root / "deployment") as deployment:
        direct, direct_keys = gateway_config(
            deployment, DIRECT_AGENCY, root / "direct", {"qlvb": [DIRECT_AGENCY]},
            max_envelope_bytes=MAX_BODY, max_document_bytes=MAX_BODY,
        )  # fmt: skip
        hub, hub_keys = gateway_config(
            deployment, HUB, root / "hub", {"hub-a": [HUB_A_AGENCY], "hub-b": [HUB_B_AGENCY]}
        )
        recipient, recipient_keys = gateway_config(
            deployment, DIRECT_RECIPIENT, root / "recipient", {"qlvb": [DIRECT_RECIPIENT]}
        )
        async with serving(direct), serving(hub), serving(recipient):
            kit = Kit(
                party(direct, direct_keys, "qlvb"),
                party(hub, hub_keys, "hub-a"),
                party(hub, hub_keys, "hub-b"),
                MAX_BODY,
                hub_a_doc_id="",
            )
            # A document hub-a has received, for the cases where hub-b reaches for it.
            edxml = document_edxml(DIRECT_AGENCY, [HUB_A_AGENCY], kit.number())
            ok(await call(kit.direct.sdk().send_edoc, edxml, sender=DIRECT_AGENCY))
            listing = await until(kit.hub_a.sdk().received_list, lambda r: len(r["data"]) == 1)
            kit.hub_a_doc_id = listing["data"][0]["docId"]
            world = World(kit, party(recipient, recipient_keys, "qlvb"))
            world.sent["qlvb"] = (await world.recorded_sends())["qlvb"]
            yield world


async def until(
    function: Callable[[], dict[str, Any] | None],
    ready: Callable[[dict[str, Any]], bool],
    timeout: float = 20.0,
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = ok(await call(function))
        if ready(found):
            return found
        assert asyncio.get_running_loop().time() < deadline, found
        await asyncio.sleep(0.2)


def _document_id(edxml: bytes) -> str:
    found = re.search(rb"<edXML:DocumentId>([^<]*)</edXML:DocumentId>", edxml)
    assert found is not None
    return found.group(1).decode()


def test_the_gateway_corpus_has_twenty_five_cases_or_more_each_with_its_request() -> None:
    assert len(GATEWAY_CASES) >= 25
    assert len({case.id for case in GATEWAY_CASES}) == len(GATEWAY_CASES)
    assert missing_builders([case.id for case in GATEWAY_CASES]) == []
    assert set(BUILDERS) == {case.id for case in GATEWAY_CASES}
    assert all(case.expect in Reason for case in GATEWAY_CASES)


@pytest.mark.parametrize("case", GATEWAY_CASES, ids=[case.id for case in GATEWAY_CASES])
async def test_a_hostile_request_gets_its_error_code_and_the_gateway_goes_on(
    case: GatewayCase, world: World
) -> None:
    target = world.party(case.target)
    before = await world.recorded_sends()
    response = await call(post, BUILDERS[case.id](world.kit), target.endpoint)

    found = answer(response)
    assert (found.get("status"), found.get("ErrorCode")) == ("FAIL", case.expect.value), found
    description = found.get("ErrorDesc")
    assert isinstance(description, str), found
    assert description.strip(), found
    for mention in case.desc_mentions:
        assert mention in description, (mention, description)
    if case.operation == "sendEdoc":
        assert found.get("DocId") == "", found  # the SDK reads it whatever the status
    assert response.status_code < 500, (response.status_code, found)

    # Nothing of it recorded (so nothing published; the recipient's check is below).
    assert await world.recorded_sends() == before
    # The same gateway serves a valid request right after.
    ok(await call(target.sdk().received_list))
    if case.operation == "sendEdoc":
        await world.valid_send(case.target)
        assert (await world.recorded_sends())["qlvb"] == world.sent["qlvb"]


async def test_the_recipient_received_only_the_valid_documents(world: World) -> None:
    """Run after the cases: what H41's software receives is exactly the valid sends."""
    recipient = world.recipient.sdk()
    expected = len(world.delivered)
    listing = await until(recipient.received_list, lambda r: len(r["data"]) >= expected)
    await asyncio.sleep(1.0)  # a late hostile delivery would show now
    listing = ok(await call(recipient.received_list))
    received = set()
    for item in listing["data"]:
        edxml = base64.b64decode(ok(await call(recipient.get_edoc, item["docId"]))["data"])
        received.add(_document_id(edxml))
    assert received == world.delivered
    assert len(listing["data"]) == expected


async def test_a_header_past_the_http_servers_limit_is_refused_and_the_gateway_goes_on(
    world: World,
) -> None:
    """A request head h11 cannot take in one read and that passes its 16 KiB bound while
    incomplete: uvicorn answers a plain 400 itself, before the gateway sees the request.
    Not the SDK's JSON shape (no SDK sends such a head: its parameters are short), but no
    500, nothing buffered without bound, and the gateway goes on."""
    request = BUILDERS["auth-huge-header"](world.kit)
    request.headers = [*request.headers, ("XroadVnpt-note", "x" * 1024 * 1024)]
    try:
        response = await call(post, request, world.kit.direct.endpoint)
    except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
        pass  # uvicorn answered 400 and closed while the head was still being sent: a reset
    else:
        assert response.status_code == 400, response.text
    ok(await call(world.kit.direct.sdk().received_list))


# -- the broker away under a sendEdoc --------------------------------------------------------


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


async def test_a_send_while_the_broker_is_away_fails_whole_and_goes_once_when_sent_again(
    adapter_deployment: Deployment, tmp_path: Path
) -> None:
    base = adapter_deployment.config(DIRECT_AGENCY)
    upstream = urlsplit(base.amqp_url.get_secret_value())
    async with TcpProxy((upstream.hostname or "127.0.0.1", upstream.port or 5672)) as proxy:
        sender_config, sender_keys = gateway_config(
            adapter_deployment, DIRECT_AGENCY, tmp_path / "a", {"qlvb": [DIRECT_AGENCY]},
            amqp_url=SecretStr(_through(base.amqp_url.get_secret_value(), proxy.port)),
            publish_timeout=2.0,
            reconnect_interval=0.3,
        )  # fmt: skip
        recipient_config, recipient_keys = gateway_config(
            adapter_deployment, DIRECT_RECIPIENT, tmp_path / "b", {"qlvb": [DIRECT_RECIPIENT]}
        )
        async with serving(sender_config) as gateway, serving(recipient_config):
            sender = party(sender_config, sender_keys, "qlvb").sdk()
            recipient = party(recipient_config, recipient_keys, "qlvb").sdk()
            edxml = document_edxml(DIRECT_AGENCY, [DIRECT_RECIPIENT], 1)

            proxy.cut()
            refused = await call(sender.send_edoc, edxml, sender=DIRECT_AGENCY)
            assert refused is not None, "the SDK would hand its caller null"
            assert (refused["status"], refused["ErrorCode"]) == ("FAIL", "broker_unavailable")
            assert refused["ErrorDesc"]
            assert refused["DocId"] == ""
            ok(await call(sender.received_list))  # the rest of the API still answers
            # Readiness says so while the robust connection reconnects.
            deadline = asyncio.get_running_loop().time() + 10
            while await gateway.client.broker_problem() is None:
                assert asyncio.get_running_loop().time() < deadline, "ready while cut off"
                await asyncio.sleep(0.1)
            # Kept, sealed, for the same file again: listed as not yet confirmed.
            kept = ok(await call(sender.sent_list))
            assert [(r["sendStatus"], r["sentTime"]) for r in kept["data"]] == [("initial", "")]

            proxy.restore()
            deadline = asyncio.get_running_loop().time() + 30
            while await gateway.client.broker_problem() is not None:
                assert asyncio.get_running_loop().time() < deadline, "no reconnection"
                await asyncio.sleep(0.1)
            # The software sends the same file again until it is taken: the publish channel
            # comes back a moment after the connection, and until then the answer is the
            # same refusal, never another.
            while True:
                again = await call(sender.send_edoc, edxml, sender=DIRECT_AGENCY)
                assert again is not None, "the SDK would hand its caller null"
                if again["status"] == "OK":
                    break
                assert again["ErrorCode"] == "broker_unavailable", again
                assert asyncio.get_running_loop().time() < deadline, again
                await asyncio.sleep(0.2)
            assert again["DocId"]

            await until(recipient.received_list, lambda r: len(r["data"]) >= 1)
            await asyncio.sleep(1.5)  # a second copy would arrive now
            listing = ok(await call(recipient.received_list))
            assert len(listing["data"]) == 1, listing
            sent = ok(await call(sender.sent_list, again["DocId"]))
            assert [row["sendStatus"] for row in sent["data"]] == ["routed"], sent
