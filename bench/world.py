"""The benchmark's exchange: the router tests' small national exchange (``testkit.Exchange``:
real PKI, one broker user per connected system, a fresh name prefix), plus sealing and
broker helpers."""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from backbone.directory import Directory
from backbone.envelope import Kind, seal
from backbone.router.topology import apply_topology
from backbone.xmldsig import sign_edxml
from testkit import Exchange, document_edxml, document_id

SENDER = "000.00.00.G22"
ONE_RECIPIENT = ["000.00.00.H41"]
THREE_RECIPIENTS = ["000.00.00.H41", "000.00.05.G01", "000.07.12.H41"]
DELIVERY_LIMIT = 5  # RouterOptions' default: the router redeclares with it
IN_FLIGHT = 512

_numbers = itertools.count(1)


def broker_url() -> str:
    return os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def next_number() -> int:
    """A fresh document number: every envelope of the run is a new document."""
    return next(_numbers)


def payload_edxml(
    sender: str, recipients: Sequence[str], number: int, payload_bytes: int, *, run: str
) -> bytes:
    """An edXML document whose Content holds ``payload_bytes`` of text."""
    filler = ("Nội dung văn bản " * (payload_bytes // 8 + 1)).encode()[:payload_bytes]
    content = filler.decode(errors="ignore")
    return document_edxml(sender, recipients, number, notation=run, content=content)


class World:
    """The exchange plus what the benchmark needs around it."""

    def __init__(self, exchange: Exchange, root: Path, directory_file: Path | None = None) -> None:
        self.exchange = exchange
        self.root = root
        self.run = exchange.names.prefix.upper()  # notation part of document ids
        # the routers' directory file: the exchange's own, written as YAML, unless given
        self.directory_file = directory_file or exchange.directory_file(root)
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None

    @classmethod
    async def create(
        cls,
        amqp_url: str,
        root: Path,
        *,
        directory: Callable[[str], Directory] | None = None,
        directory_file: Callable[[Directory], Path] | None = None,
    ) -> World:
        """``directory``: another than the tests' small exchange, made from the run's account
        prefix (its certificates issued on first use); ``directory_file`` writes it for the
        routers."""
        exchange = await Exchange.create(
            amqp_url, root / "pki", certificates=directory is None, directory=directory
        )
        file = None if directory_file is None else directory_file(exchange.directory)
        world = cls(exchange, root, file)
        channel = await world.channel()
        await apply_topology(
            channel, exchange.directory, exchange.names, delivery_limit=DELIVERY_LIMIT
        )
        return world

    @property
    def names(self):
        return self.exchange.names

    async def channel(self) -> AbstractChannel:
        """A guest channel with publisher confirms, for set-up, pre-fill and polling."""
        if self._channel is None:
            self._connection = await aio_pika.connect_robust(self.exchange.amqp_url)
            self._channel = await self._connection.channel(publisher_confirms=True)
        return self._channel

    def seal_router_envelope(
        self, recipients: Sequence[str], payload_bytes: int, *, xml_signed: bool = False
    ) -> bytes:
        """A signed and encrypted document envelope, sealed the way the router tests do;
        with ``xml_signed``, its edXML carries the sender's XML-DSig, as a recipient's
        adapter requires (the router does not read the edXML)."""
        issued = self.exchange.pki.agency(SENDER)
        number = next_number()
        edxml = payload_edxml(SENDER, recipients, number, payload_bytes, run=self.run)
        if xml_signed:
            edxml = sign_edxml(edxml, issued.key, issued.certificate)
        return seal(
            edxml,
            self.exchange.pki.parties(
                Kind.DOCUMENT,
                SENDER,
                recipients,
                document_id=document_id(SENDER, number, self.run),
                business_type=0,
            ),
        )

    async def submit_many(self, bodies: Sequence[bytes], *, progress=None) -> None:
        """Publish ``bodies`` to the submit exchange as the sender's broker user (its
        ``user_id``), persistent, confirmed, up to ``IN_FLIGHT`` at once."""
        account = self.exchange.account_of(SENDER)
        channel = await self.exchange.channel(account)
        exchange = await channel.get_exchange(self.names.submit_exchange, ensure=False)
        limit = asyncio.Semaphore(IN_FLIGHT)

        async def one(body: bytes) -> None:
            async with limit:
                await exchange.publish(
                    aio_pika.Message(
                        body,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        user_id=account,
                        message_id=str(uuid.uuid4()),
                    ),
                    routing_key=self.names.submit_routing_key,
                    mandatory=True,
                )
            if progress is not None:
                progress()

        await asyncio.gather(*(one(body) for body in bodies))

    async def depth(self, queue: str) -> int:
        """Messages ready in ``queue`` (a raw passive declare: aio-pika's robust
        ``declare_queue(passive=True)`` answers 0 here)."""
        channel = await self.channel()
        underlay = await channel.get_underlay_channel()
        result = await underlay.queue_declare(queue, passive=True)
        return int(result.message_count or 0)

    async def purge(self, *queues: str) -> None:
        channel = await self.channel()
        for name in queues:
            queue = await channel.get_queue(name, ensure=False)
            await queue.purge()

    def inboxes(self, recipients: Sequence[str]) -> list[str]:
        return sorted({self.exchange.inbox_of(code) for code in recipients})

    def all_inboxes_and_events(self) -> list[str]:
        codes = [str(a.organ_code) for a in self.exchange.directory.agencies]
        return sorted(
            {self.exchange.inbox_of(c) for c in codes} | {self.exchange.events_of(c) for c in codes}
        )

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
        await self.exchange.close()
