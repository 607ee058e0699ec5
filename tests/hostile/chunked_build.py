"""The messages of each ``build:`` case of :mod:`tests.hostile.chunked_cases`: genuine
chunked documents sealed per run from the sender (random bytes: the router never sees
plaintext), and the one hostile message made from them."""

from __future__ import annotations

import itertools
import json
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from backbone.envelope import Kind, SealParties
from backbone.envelope.algorithms import sign
from backbone.envelope.chunk_wire import (
    encode_chunk,
    encode_header,
    read_chunk,
    read_chunked_header,
)
from backbone.envelope.chunked import ChunkedHeader, ChunkLimits, digests_digest
from backbone.envelope.split import SealedDocument, seal_file
from backbone.wire import FORM_CHUNK, FORM_CHUNKED_HEADER, envelope_message
from testkit import Exchange, document_id
from tests.hostile.chunked_cases import ChunkedCase

__all__ = [
    "OTHER",
    "RECIPIENT",
    "SENDER",
    "Attempt",
    "ChunkedKit",
    "Sealed",
    "Sent",
    "attempt",
    "missing_builders",
    "publish",
]

SENDER = "000.00.00.G22"
RECIPIENT = "000.00.00.H41"
OTHER = "000.00.05.G01"  # another agency with a broker account of its own
MiB: Final = 1 << 20
LIMITS: Final = ChunkLimits(chunk_bytes=MiB)  # within the router's chunk size bounds
DOCUMENT_BYTES: Final = 3 * MiB + 100  # four chunks, the last a short one


@dataclass(frozen=True, slots=True)
class Sent:
    """One message as a sending system publishes it: its body, form and chunk index, the
    envelope whose identity headers it carries, and the agency whose account publishes."""

    body: bytes
    form: str
    index: int | None
    identity: ChunkedHeader
    publisher: str = SENDER


@dataclass(frozen=True, slots=True)
class Attempt:
    before: tuple[Sent, ...]  # genuine, published first
    hostile: Sent
    after: tuple[Sent, ...]  # genuine, published after: each must still be forwarded
    envelope_id: str | None  # the envelope the refusal names (None: its header unreadable)
    told: str = SENDER  # the party the router can name: never one a forgery points at


class ChunkedKit:
    """Seals genuine chunked documents to RECIPIENT (from SENDER unless told) for this run."""

    def __init__(self, exchange: Exchange, root: Path) -> None:
        self.exchange = exchange
        self.root = root
        self._numbers = itertools.count(1)
        self._run = exchange.names.prefix.upper()  # the notation part of its DocumentIds

    def seal(self, sender: str = SENDER) -> Sealed:
        number = next(self._numbers)
        path = self.root / f"chunked-{number}.bin"
        path.write_bytes(os.urandom(DOCUMENT_BYTES))
        signer = self.exchange.pki.agency(sender)
        document = seal_file(
            path,
            SealParties(
                kind=Kind.DOCUMENT,
                sender=sender,
                sender_key=signer.key,
                sender_cert=signer.certificate,
                recipients={RECIPIENT: self.exchange.pki.agency(RECIPIENT).certificate},
                document_id=document_id(sender, number, self._run),
                business_type=0,
            ),
            limits=LIMITS,
        )
        return Sealed(document, list(document.chunk_messages()), sender)

    def half_sent(self, sealed: Sealed, count: int) -> list[Sent]:
        """``count`` headers of new documents made from ``sealed``'s (each its own envelope
        and DocumentId, signed by the sender), whose chunks are never sent."""
        headers = []
        for _ in range(count):
            number = next(self._numbers)

            def renamed(fields: dict[str, Any], number: int = number) -> None:
                fields["envelope_id"] = str(uuid.uuid4())
                fields["document_id"] = document_id(sealed.sender, number, self._run)

            sent = self.resigned(sealed, renamed, by=sealed.sender)
            headers.append(replace(sent, identity=read_chunked_header(sent.body).header))
        return headers

    def resigned(self, sealed: Sealed, change: Callable[[dict[str, Any]], None], by: str) -> Sent:
        """``sealed``'s header with ``change`` made to its fields, signed with ``by``'s key."""
        fields = json.loads(read_chunked_header(sealed.document.header_message).header_bytes)
        change(fields)
        header_bytes = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
        signature = sign(self.exchange.pki.agency(by).key, header_bytes)
        body = encode_header(header_bytes, signature)
        return Sent(body, FORM_CHUNKED_HEADER, None, sealed.header, sealed.sender)


@dataclass(frozen=True, slots=True)
class Sealed:
    document: SealedDocument
    chunks: list[bytes]  # the chunk messages, read once
    sender: str

    @property
    def header(self) -> ChunkedHeader:
        return self.document.header

    @property
    def envelope_id(self) -> str:
        return self.document.header.envelope_id

    def header_message(self) -> Sent:
        message = self.document.header_message
        return Sent(message, FORM_CHUNKED_HEADER, None, self.header, self.sender)

    def chunk(self, index: int, body: bytes | None = None, publisher: str | None = None) -> Sent:
        body = self.chunks[index] if body is None else body
        return Sent(body, FORM_CHUNK, index, self.header, publisher or self.sender)

    def messages(self, indexes: Iterable[int] | None = None) -> tuple[Sent, ...]:
        """The header (when ``indexes`` is None) or the chunks at ``indexes``."""
        if indexes is None:
            return (self.header_message(),)
        return tuple(self.chunk(index) for index in indexes)

    def relabelled(self, index: int, ciphertext: bytes, envelope_id: str | None = None) -> bytes:
        """A chunk message numbered ``index`` (of ``envelope_id``, by default this one's)."""
        return encode_chunk(envelope_id or self.envelope_id, index, ciphertext)

    def ciphertext(self, index: int) -> bytes:
        return read_chunk(self.chunks[index]).ciphertext


# -- the builders, one per case ----------------------------------------------------------------


def _header_announcing_terabytes(kit: ChunkedKit) -> Attempt:
    sealed = kit.seal()

    def terabytes(fields: dict[str, Any]) -> None:  # consistent on its face: only the limit
        fields["document_size"] = 4 << 40
        fields["chunk_size"] = 1 << 30
        fields["chunk_digests"] = ["ab" * 32] * 4096
        fields["payload_size"] = (4 << 40) + 16 * 4096
        fields["payload_digest"] = digests_digest(fields["chunk_digests"])

    return Attempt((), kit.resigned(sealed, terabytes, by=RECIPIENT), (), sealed.envelope_id)


def _header_count_disagrees(kit: ChunkedKit) -> Attempt:
    sealed = kit.seal()

    def one_digest_fewer(fields: dict[str, Any]) -> None:
        fields["chunk_digests"] = fields["chunk_digests"][:-1]
        fields["payload_size"] = fields["document_size"] + 16 * len(fields["chunk_digests"])
        fields["payload_digest"] = digests_digest(fields["chunk_digests"])

    return Attempt((), kit.resigned(sealed, one_digest_fewer, by=SENDER), (), None)


def _header_payload_size_disagrees(kit: ChunkedKit) -> Attempt:
    sealed = kit.seal()

    def one_byte_more(fields: dict[str, Any]) -> None:
        fields["payload_size"] += 1

    return Attempt((), kit.resigned(sealed, one_byte_more, by=SENDER), (), None)


def _last_chunk_truncated(kit: ChunkedKit) -> Attempt:
    sealed = kit.seal()
    last = len(sealed.chunks) - 1
    cut = sealed.relabelled(last, sealed.ciphertext(last)[:-100])
    return Attempt(
        sealed.messages() + sealed.messages(range(last)),
        sealed.chunk(last, cut),
        sealed.messages([last]),
        sealed.envelope_id,
    )


def _chunk_surplus(kit: ChunkedKit) -> Attempt:
    # Before the last chunk: a document whose chunks have all passed is forgotten, and a
    # chunk after that is foreign (tests/test_chunked_end_to_end.py).
    sealed = kit.seal()
    count = len(sealed.chunks)
    surplus = sealed.relabelled(count, sealed.ciphertext(count - 1))
    return Attempt(
        sealed.messages() + sealed.messages(range(count - 1)),
        sealed.chunk(count, surplus),
        sealed.messages([count - 1]),
        sealed.envelope_id,
    )


def _chunk_reordered(kit: ChunkedKit) -> Attempt:
    sealed = kit.seal()
    swapped = sealed.relabelled(1, sealed.ciphertext(2))
    return Attempt(
        sealed.messages() + sealed.messages([0]),
        sealed.chunk(1, swapped),
        sealed.messages(range(1, len(sealed.chunks))),
        sealed.envelope_id,
    )


def _chunk_replayed_into_another_document(kit: ChunkedKit) -> Attempt:
    routed, next_one = kit.seal(), kit.seal()
    replayed = next_one.relabelled(1, routed.ciphertext(1))
    return Attempt(
        routed.messages()
        + routed.messages(range(len(routed.chunks)))
        + next_one.messages()
        + next_one.messages([0]),
        next_one.chunk(1, replayed),
        next_one.messages(range(1, len(next_one.chunks))),
        next_one.envelope_id,
    )


def _chunk_by_another_account(kit: ChunkedKit) -> Attempt:
    sealed = kit.seal()
    return Attempt(
        sealed.messages() + sealed.messages([0]),
        sealed.chunk(1, publisher=OTHER),
        sealed.messages(range(1, len(sealed.chunks))),
        sealed.envelope_id,
        told=OTHER,  # the publisher: it may not aim events at the document's sender
    )


_BUILDERS: Final[dict[str, Callable[[ChunkedKit], Attempt]]] = {
    "header_announcing_terabytes": _header_announcing_terabytes,
    "header_count_disagrees": _header_count_disagrees,
    "header_payload_size_disagrees": _header_payload_size_disagrees,
    "last_chunk_truncated": _last_chunk_truncated,
    "chunk_surplus": _chunk_surplus,
    "chunk_reordered": _chunk_reordered,
    "chunk_replayed_into_another_document": _chunk_replayed_into_another_document,
    "chunk_by_another_account": _chunk_by_another_account,
}


def attempt(case: ChunkedCase, kit: ChunkedKit) -> Attempt:
    return _BUILDERS[case.source.removeprefix("build:")](kit)


def missing_builders(cases: Iterable[ChunkedCase]) -> list[str]:
    names = (case.source.removeprefix("build:") for case in cases)
    return [name for name in names if name not in _BUILDERS]


async def publish(exchange: Exchange, sent: Sent) -> None:
    """Publish ``sent`` on the submit exchange as its publisher's broker account, confirmed."""
    account = exchange.account_of(sent.publisher)
    channel = await exchange.channel(account)
    submit = await channel.get_exchange(exchange.names.submit_exchange, ensure=False)
    await submit.publish(
        envelope_message(
            sent.body,
            sent.identity,
            message_id=str(uuid.uuid4()),
            user_id=account,
            form=sent.form,
            chunk_index=sent.index,
        ),
        routing_key=exchange.names.submit_routing_key,
        mandatory=True,
    )
