"""The soak's traffic and its ledger: what was sent, and what must come back.

Two senders at one steady rate, in a fixed cycle of ten steps:

- seven documents dropped into 000.00.00.G22's drop folder (its adapter is a process),
  alternately to one recipient and fanned out to three;
- two documents to two recipients from 000.00.05.G01, software using the Python API in
  this process (an :class:`AdapterClient`: it seals, publishes, reads its statuses and the
  router's events);
- one bad envelope from G01, in turn: the bytes of an earlier G01 envelope again (the
  router answers ``duplicate``; nothing is delivered twice), one signed with another
  agency's key and one to an organ code the directory does not know (both ``rejected``;
  published raw with G01's broker user, as a broken or dishonest sender would).

Every recipient's adapter sends status 01 for what it writes to its inbox; G22's adapter
writes those into its status/ folder, G01's client yields them from ``received()``.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika

from adapters.abc import Sealed
from adapters.client import AdapterClient
from backbone.envelope import Kind
from backbone.wire.events import EventType, decode_events
from tests.support import Exchange, document_edxml, document_id
from tests.support.adapter_process import drop, inbox_documents
from tests.support.forging import resigned

__all__ = ["FAN_OUT", "G01", "G22", "RECIPIENTS", "UNKNOWN", "Ledger", "Traffic"]

G22, G01 = "000.00.00.G22", "000.00.05.G01"
RECIPIENTS = ("000.00.00.H41", "000.07.12.H41", "002.07.12.H41")
FAN_OUT = list(RECIPIENTS)
UNKNOWN = "000.99.99.X99"  # in no directory
CYCLE = 10
RAW_TO = [RECIPIENTS[1], RECIPIENTS[2]]


@dataclass
class Ledger:
    """What was sent (expected per document: its recipients) and what the router told G01."""

    documents: dict[str, tuple[str, ...]] = field(default_factory=dict)  # id → recipients
    resent: set[str] = field(default_factory=set)  # G01 documents sent twice, same bytes
    refused: dict[str, str] = field(default_factory=dict)  # G01 document → why it must fail
    events: dict[EventType, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    raw_statuses: set[tuple[str, str]] = field(default_factory=set)  # (document, from) at G01
    operator_events: int = 0

    @property
    def deliveries(self) -> int:
        return sum(len(recipients) for recipients in self.documents.values())


class Traffic:
    def __init__(self, exchange: Exchange, sender_folder: Path, client: AdapterClient) -> None:
        self.exchange = exchange
        self.sender_folder = sender_folder
        self.client = client  # G01's
        self.ledger = Ledger()
        self.steps = 0
        self._raw: list[Sealed] = []  # G01 envelopes sent, for resending
        self._numbers = {G22: 100_000, G01: 500_000}

    @property
    def sent(self) -> int:
        """Envelopes submitted so far (documents, resends and refused ones)."""
        return self.steps

    def _next(self, sender: str) -> tuple[int, str]:
        self._numbers[sender] += 1
        number = self._numbers[sender]
        return number, document_id(sender, number)

    async def step(self) -> None:
        """The next step of the cycle."""
        position = self.steps % CYCLE
        self.steps += 1
        if position < 7:
            recipients = FAN_OUT if position % 2 else [RECIPIENTS[0]]
            number, doc = self._next(G22)
            data = document_edxml(G22, recipients, number)
            await asyncio.to_thread(drop, self.sender_folder, f"vb-{number}.edxml", data)
            self.ledger.documents[doc] = tuple(recipients)
        elif position < 9:
            number, doc = self._next(G01)
            sealed = self.client.seal(document_edxml(G01, RAW_TO, number))
            self.ledger.documents[doc] = tuple(RAW_TO)
            self._raw.append(sealed)
            await self.client.publish(sealed)
        else:
            await self._bad(self.steps // CYCLE % 3)

    async def _bad(self, which: int) -> None:
        if which == 0 and self._raw:
            sealed = self._raw.pop(len(self._raw) // 2)  # an earlier one, long routed
            self.ledger.resent.add(sealed.header.document_id)
            await self.client.publish(sealed)
            return
        number, doc = self._next(G01)
        if which == 1:
            honest = self.client.seal(document_edxml(G01, RAW_TO, number))
            body = resigned(honest.body, self.exchange.pki.agency(G22).key)
            self.ledger.refused[doc] = "signed with another agency's key"
        else:
            body = self.exchange.seal_document(G01, [UNKNOWN], number)
            self.ledger.refused[doc] = "to an unknown organ code"
        await self._submit(body)

    async def _submit(self, body: bytes) -> None:
        await self.exchange.submit(body, as_account=self.exchange.account_of(G01))

    # -- G01's side: its software reads its statuses and the router's events ---------------

    async def listen(self) -> list[asyncio.Task[None]]:
        """Read G01's statuses and events, and the operators' copy of every event (which an
        operator's tool would read; left alone it would only grow)."""
        channel = await self.exchange.channel(self.exchange.account_of(G01))
        await channel.set_qos(prefetch_count=200)
        queue = await channel.get_queue(self.exchange.names.events_operators_queue, ensure=False)
        await queue.consume(self._operators)
        return [asyncio.create_task(self._statuses()), asyncio.create_task(self._events())]

    async def _statuses(self) -> None:
        async for received in self.client.received():
            header = received.header
            if header.kind == Kind.STATUS and header.status_code == "01":
                self.ledger.raw_statuses.add((header.document_id, header.sender))

    async def _events(self) -> None:
        async for event in self.client.events():
            if event.document_id is not None:
                self.ledger.events[event.type][event.document_id] += 1

    async def _operators(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.ledger.operator_events += len(decode_events(message.body))
        await message.ack()


def delivered(folders: dict[str, Path]) -> dict[str, Counter[str]]:
    """Per recipient: how many inbox entries each document has."""
    return {code: Counter(inbox_documents(folder)) for code, folder in folders.items()}


def statuses_at_sender(folder: Path) -> set[tuple[str, str]]:
    """(document, recipient) of every status 01 in a drop folder's status/."""
    found: set[tuple[str, str]] = set()
    for path in (folder / "status").glob("*.json"):
        record: dict[str, Any] = json.loads(path.read_text())
        if record["status_code"] == "01":
            found.add((str(record["document_id"]), str(record["sender"])))
    return found
