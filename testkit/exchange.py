"""A small national exchange for router tests: real broker, real PKI, real broker users.

The directory spans all four tiers and a provincial hub::

    000.00.00.G22  Government Office        tier 1, direct
    000.00.05.G01  a ministry's bureau      tier 2, direct
    000.00.00.H41  Nghệ An province         tier 1, direct
    000.07.12.H41  a commune of Nghệ An     tier 3, direct
    002.07.12.H41  a unit under it          tier 4, direct
    00.53.W00      Tây Ninh's hub (LGSP) serving 000.00.00.H53:
      000.00.00.H53, 000.00.32.H53 (district), 000.21.32.H53 (commune), 001.21.32.H53 (unit)

Each connected system gets its own broker user, so the AMQP ``user_id`` the router checks
is the broker's word, not the test's.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from backbone.broker.management import ManagementClient
from backbone.clock import edxml_now
from backbone.directory import (
    Directory,
    DirectoryBuilder,
    agency_account,
    dump_directory,
    hub_account,
)
from backbone.edxml import EdxmlStatus, Organization, ResponseFor, StatusCode, build
from backbone.envelope import Kind, seal
from backbone.wire.events import Event, decode_events
from backbone.wire.names import Names
from testkit.documents import document_edxml, document_id
from testkit.pki import DevPki, make_pki

HUB = "00.53.W00"
DIRECT = [
    "000.00.00.G22",
    "000.00.05.G01",
    "000.00.00.H41",
    "000.07.12.H41",
    "002.07.12.H41",
    "H01.151",  # a Decision 20/2020 code: a commune of province H01
]
# The hub serves Tây Ninh in both formats: its QCVN 102 subtree and a Decision 20 one.
VIA_HUB = ["000.00.00.H53", "000.00.32.H53", "000.21.32.H53", "001.21.32.H53", "H53.318.02"]
HUB_SERVES = ("000.00.00.H53", "H53.318")


def build_directory(
    certificates: Mapping[str, str] | None = None, *, account_prefix: str = ""
) -> Directory:
    """The test directory; ``certificates`` (organ code → PEM path) fills in the agencies'
    certificates, which adapters need to encrypt to them (the router does not).
    ``account_prefix`` makes broker user names unique per run: test sessions sharing one
    broker would otherwise reset or delete each other's users."""
    known = certificates or {}
    builder = DirectoryBuilder()
    for code in DIRECT:
        account = f"{account_prefix}{agency_account(code)}"
        builder.direct(code, certificate=known.get(code), broker_account=account)
    builder.hub(HUB, *HUB_SERVES, broker_account=f"{account_prefix}{hub_account(HUB)}")
    for code in VIA_HUB:
        builder.via_hub(code, HUB, certificate=known.get(code))
    return builder.build()


@dataclass
class Exchange:
    """The test exchange: names, directory, PKI, and one broker user per connected system."""

    amqp_url: str
    names: Names
    directory: Directory
    pki: DevPki
    passwords: dict[str, str] = field(default_factory=dict)
    _connections: dict[str, AbstractRobustConnection] = field(default_factory=dict)
    _channels: dict[str, AbstractChannel] = field(default_factory=dict)

    @classmethod
    async def create(
        cls,
        amqp_url: str,
        pki_dir: Path,
        *,
        certificates: bool = False,
        directory: Callable[[str], Directory] | None = None,
    ) -> Exchange:
        """``certificates``: issue every agency's certificate now and list it in the
        directory (adapters encrypt to directory certificates). ``directory``: another
        directory than the test one, made from the run's account prefix (its accounts must
        start with it)."""
        pki = make_pki(pki_dir)
        known = (
            {code: str(pki.agency(code).cert_path) for code in [*DIRECT, *VIA_HUB]}
            if certificates
            else None
        )
        prefix = f"t{uuid.uuid4().hex[:8]}"
        exchange = cls(
            amqp_url=amqp_url,
            names=Names(prefix=prefix),
            directory=(
                build_directory(known, account_prefix=f"{prefix}-")
                if directory is None
                else directory(f"{prefix}-")
            ),
            pki=pki,
        )
        management = ManagementClient.from_env()
        for account in exchange.accounts():
            password = secrets.token_urlsafe(16)
            await management.create_user(account, password)
            await management.set_permissions(account, configure=".*", write=".*", read=".*")
            exchange.passwords[account] = password
        return exchange

    def directory_file(self, root: Path) -> Path:
        """The directory as a file in ``root`` (written once), for routers and adapters."""
        file = root / "directory.yaml"
        if not file.exists():
            root.mkdir(parents=True, exist_ok=True)
            dump_directory(self.directory.file, file)
        return file

    def accounts(self) -> list[str]:
        hubs = [hub.broker_account for hub in self.directory.hubs]
        direct = [a.broker_account for a in self.directory.agencies if a.broker_account]
        return sorted({*hubs, *direct})

    def account_of(self, code: str) -> str:
        system = self.directory.serving_system(code)
        account = system.broker_account
        assert account is not None
        return account

    def inbox_of(self, code: str) -> str:
        system = self.directory.serving_system(code)
        return self.names.inbox_queue(system.system_id)

    def events_of(self, code: str) -> str:
        system = self.directory.serving_system(code)
        return self.names.events_queue(system.system_id)

    def url_for(self, account: str) -> str:
        parts = urlsplit(self.amqp_url)
        netloc = f"{account}:{self.passwords[account]}@{parts.hostname}:{parts.port or 5672}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    async def channel(self, account: str) -> AbstractChannel:
        if account not in self._channels:
            # Bounded: a wedged broker fails the test that needs it, not the whole run.
            connection = await aio_pika.connect_robust(self.url_for(account), timeout=60)
            self._connections[account] = connection
            self._channels[account] = await connection.channel(publisher_confirms=True)
        return self._channels[account]

    def seal_document(
        self,
        sender: str,
        recipients: list[str],
        number: int,
        *,
        business: int = 0,
        for_recipients: list[str] | None = None,
    ) -> bytes:
        edxml = document_edxml(sender, recipients, number, business=business)
        return seal(
            edxml,
            self.pki.parties(
                Kind.DOCUMENT,
                sender,
                for_recipients or recipients,
                document_id=document_id(sender, number),
                business_type=business,
            ),
        )

    def seal_status(
        self,
        sender: str,
        original_sender: str,
        number: int,
        code: StatusCode,
        *,
        to: list[str] | None = None,
    ) -> bytes:
        """A status about ``original_sender``'s document ``number``, sent to it, or to ``to``
        (the original sender's own take-back request 13 goes to its recipients)."""
        about = document_id(original_sender, number)
        edxml = build(
            EdxmlStatus(
                sender=Organization(organ_id=sender),
                response_for=ResponseFor(organ_id=original_sender, document_id=about),
                status_code=code,
                timestamp=edxml_now(),
            )
        )
        return seal(
            edxml,
            self.pki.parties(
                Kind.STATUS,
                sender,
                to or [original_sender],
                document_id=about,
                status_code=code.value,
            ),
        )

    async def submit(
        self,
        body: bytes,
        *,
        as_account: str,
        user_id: str | None = "",
        routing_key: str = "envelope",
    ) -> None:
        """Publish as ``as_account`` (user_id = that account unless told otherwise), by
        default with the envelopes' key (``names.chunk_routing_key``: to the chunk queue)."""
        channel = await self.channel(as_account)
        exchange = await channel.get_exchange(self.names.submit_exchange, ensure=False)
        await exchange.publish(
            aio_pika.Message(
                body,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                user_id=as_account if user_id == "" else user_id,
                message_id=str(uuid.uuid4()),
            ),
            routing_key=routing_key,
        )

    async def drain(
        self,
        queue_name: str,
        *,
        expect: int,
        timeout: float = 10.0,
        weigh: Callable[[aio_pika.abc.AbstractIncomingMessage], int] = lambda _: 1,
    ) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """Take messages (acked) from a queue until their ``weigh``ts (1 each unless told:
        an events message counts its events) reach ``expect``, waiting up to ``timeout``;
        then make sure no more arrive for a moment."""
        channel = await self.channel(self.accounts()[0])
        queue = await channel.get_queue(queue_name, ensure=False)
        taken: list[aio_pika.abc.AbstractIncomingMessage] = []
        weight = 0
        deadline = asyncio.get_running_loop().time() + timeout
        while weight < expect and asyncio.get_running_loop().time() < deadline:
            message = await queue.get(fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            taken.append(message)
            weight += weigh(message)
        await asyncio.sleep(0.3)
        while (extra := await queue.get(fail=False)) is not None:
            await extra.ack()
            taken.append(extra)
        return taken

    async def events(self, code: str, *, expect: int, timeout: float = 10.0) -> list[Event]:
        messages = await self.drain(
            self.events_of(code),
            expect=expect,
            timeout=timeout,
            weigh=lambda message: len(decode_events(message.body)),
        )
        return [event for m in messages for event in decode_events(m.body)]

    async def close(self) -> None:
        for connection in self._connections.values():
            await connection.close()
        management = ManagementClient.from_env()
        for account in self.passwords:
            await management.delete_user(account)
        await management.delete_prefixed(self.names.prefix)
