"""Opening a received envelope: from the AMQP body to :class:`~adapters.abc.Received` items
and :class:`~adapters.abc.Refused` refusals, one per served recipient.

Pure: no broker, no event loop. The envelope is unwrapped and its header signature verified
(never trust the broker or the router). The content is then judged once per envelope, not
once per served agency: the header commits to one content key, so every recipient whose key
wrap opens reads the same plaintext. It is decrypted once, pre-scanned against the edXML
limits (:mod:`backbone.edxml.prescan`: one linear pass that bounds the cost of everything
after it), validated (schema and semantic checks, the model read), and only then its XML-DSig
verified in that same tree, whose canonical form is held to the signed digest: the model read
once is the signed content's. Per served agency only the cheap checks remain:
its key wrap (one RSA decryption) and the edXML against the signed header.

A document addressed to a closed code that a served agency took over comes forwarded by the
router, still wrapped for the closed code (docs/directory.md, "Routing through a change"):
it is opened with the closed agency's key (``inherited_keys``), judged exactly the same, and
handed to its heir marked ``forwarded_from`` the closed code. Without that key it is refused
for the heir (``inherited_key_missing``), so its sender is told and the envelope is kept.

An envelope that is not authentic, not for us, or cannot be judged now raises; content a
served agency cannot accept comes back as a :class:`Refused` (see :mod:`adapters.receiving`
for what is done with each).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.abc import Received, Refused
from adapters.config import InheritedIdentity, ServedIdentity
from adapters.inheritance import served_heir
from backbone.directory import Directory
from backbone.edxml import (
    DEFAULT_LIMITS,
    EdxmlDocument,
    EdxmlMessage,
    EdxmlStatus,
    XmlLimits,
    examine,
    examine_parsed,
    parse_xml,
)
from backbone.envelope import (
    EnvelopeHeader,
    VerifiedEnvelope,
    check_agreement,
    check_binding,
    decrypt_payload,
    read_frame,
    unwrap_content_key,
    verify_frame,
)
from backbone.envelope.chunk_wire import VerifiedChunkedHeader
from backbone.errors import (
    BackboneError,
    NotARecipientError,
    Reason,
    RevocationUnknownError,
    StoreUnavailableError,
)
from backbone.organ import OrganCode
from backbone.pki.validation import CertificateValidator
from backbone.xmldsig import VerifiedXml, verify_edxml

__all__ = ["EnvelopeOpener", "Opened", "check_matches"]


class Opened(NamedTuple):
    """What one envelope yields: items to hand out, and refusals."""

    items: list[Received]
    refusals: list[Refused]


class _Wrap(NamedTuple):
    """One key wrap of an envelope this adapter opens: the ``code`` it names, the served
    agency it is for, and the key that opens it (None: a forwarded one with no inherited
    key)."""

    code: str
    recipient: str
    key: rsa.RSAPrivateKey | None

    @property
    def forwarded_from(self) -> str | None:
        return None if self.code == self.recipient else self.code


class EnvelopeOpener:
    """Opens envelopes for the served agencies ``agencies`` (organ code → identity), and
    those forwarded from the closed agencies they took over in the running directory
    (``directory()``: the version the adapter runs now) with the ``inherited`` keys (closed
    code → identity)."""

    def __init__(
        self,
        agencies: Mapping[str, ServedIdentity],
        validator: CertificateValidator,
        *,
        max_envelope_bytes: int,
        system: str,
        directory: Callable[[], Directory] | None = None,
        inherited: Mapping[str, InheritedIdentity] | None = None,
        max_document_bytes: int | None = None,
    ) -> None:
        """``max_document_bytes``: the largest chunked document, whose file is parsed
        within that size (the single message's XML limits otherwise)."""
        self._agencies = agencies
        self._file_limits = (
            DEFAULT_LIMITS
            if max_document_bytes is None
            else DEFAULT_LIMITS.admitting(max_document_bytes)
        )
        self._validator = validator
        self._max_envelope_bytes = max_envelope_bytes
        self._system = system
        self._directory = directory
        self._inherited = inherited or {}

    def open(self, body: bytes) -> Opened:
        """Verify the envelope, then decrypt and verify for each served recipient. Raises
        when the envelope is not authentic, not for us, or cannot be judged now (revocation
        status unknown); content a recipient refuses is returned as a :class:`Refused`."""
        frame = read_frame(body, max_size=self._max_envelope_bytes)
        envelope = verify_frame(frame, self._validator)  # never trust the broker or router
        return self._opened(_Content(envelope, self._validator), body)

    def ours(self, header: EnvelopeHeader) -> list[str]:
        """The served agencies ``header`` is for, directly or as the heir of a closed
        recipient; :class:`NotARecipientError` when none."""
        return list(dict.fromkeys(wrap.recipient for wrap in self._wraps(header)))

    def _wraps(self, header: EnvelopeHeader) -> list[_Wrap]:
        """The key wraps to open here: the served recipients', then a closed recipient's
        whose heir is served and not a recipient itself (it reads the same content through
        its own wrap)."""
        wraps = [
            _Wrap(code, code, self._agencies[code].key)
            for code in header.recipients
            if code in self._agencies
        ]
        for code in header.recipients:
            if code in self._agencies:
                continue
            heir = self._heir(code)
            if heir is not None and heir not in header.recipients:
                inherited = self._inherited.get(code)
                wraps.append(_Wrap(code, heir, None if inherited is None else inherited.key))
        if not wraps:
            raise NotARecipientError(
                f"envelope {header.envelope_id} is for {', '.join(header.recipients)}; "
                f"{self._system} serves none of them"
            )
        return wraps

    def _heir(self, code: str) -> str | None:
        inherited = self._inherited.get(code)
        if inherited is not None:
            return inherited.heir
        if self._directory is None:
            return None
        return served_heir(self._directory(), code, self._agencies)

    def content_key(self, verified: VerifiedChunkedHeader) -> bytes | None:
        """The content key through the first served wrap that opens it (every one that
        does gives the same key: the header's commitment), to decrypt a chunked document's
        chunks as they are staged; None when none opens it (the opening says why)."""
        for wrap in self._wraps(verified.header):
            if wrap.key is None:
                continue
            try:
                return unwrap_content_key(verified, recipient=wrap.code, recipient_key=wrap.key)
            except BackboneError:
                continue
        return None

    def open_staged(
        self, verified: VerifiedChunkedHeader, deliver: Callable[[bytes], Path]
    ) -> Opened:
        """:meth:`open` for a chunked document whose chunks are all staged: ``deliver``
        decrypts them with the content key (once, into a file) and returns that file, which
        is then read and judged as a single envelope's content is (pre-scan, schema,
        XML-DSig). Its items carry the file (:attr:`Received.file`), not the bytes."""
        content = _Content(verified, self._validator, deliver, self._file_limits)
        return self._opened(content, verified.body)

    def _opened(self, content: _Content, body: bytes) -> Opened:
        items: list[Received] = []
        refusals: list[Refused] = []
        for wrap in self._wraps(content.envelope.header):
            opened = self._open_for(content, wrap, body)
            if isinstance(opened, Received):
                items.append(opened)
            else:
                refusals.append(opened)
        return Opened(items, refusals)

    def _open_for(self, content: _Content, wrap: _Wrap, body: bytes) -> Received | Refused:
        header = content.envelope.header
        plaintext: bytes | None = None
        try:
            if wrap.key is None:
                raise _no_inherited_key(header, wrap)
            key = unwrap_content_key(content.envelope, recipient=wrap.code, recipient_key=wrap.key)
            plaintext = content.decrypt(key)
            verified, message = content.judge()
            check_matches(header, message, wrap.code)  # the edXML's To names the closed code
        except (RevocationUnknownError, StoreUnavailableError):
            raise  # not a verdict on the content: try again later
        except BackboneError as error:
            # The header is authentic (verify_frame), so its sender is the one to tell.
            return Refused(
                header=header,
                recipient=wrap.recipient,
                reason=error.reason,
                message=error.message,
                body=body,
                edxml=content.refused_content(plaintext),
                refused_at=datetime.now(UTC),
            )
        return Received(
            header=header,
            recipient=wrap.recipient,
            forwarded_from=wrap.forwarded_from,
            # A chunked document is handed over as its file: the bytes read to judge it
            # go when the opening ends.
            edxml=plaintext if content.file is None else b"",
            file=content.file,
            message=message,
            signer_certificate_pem=_pem(verified.certificate.certificate),
            received_at=datetime.now(UTC),
        )


@lru_cache(maxsize=256)
def _pem(certificate: x509.Certificate) -> str:
    """``certificate`` in PEM, made once per certificate (the same few signers send most
    documents; ≈ 7 µs each time otherwise). Only the encoding is kept: the certificate
    itself is validated for every document (:func:`~backbone.xmldsig.verify_edxml`)."""
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _no_inherited_key(header: EnvelopeHeader, wrap: _Wrap) -> BackboneError:
    return BackboneError(
        f"envelope {header.envelope_id} is addressed to {wrap.code}, which is closed; the "
        f"router forwarded it to its successor {wrap.recipient}, which holds no key of "
        f"{wrap.code} and cannot open it: send it again addressed to {wrap.recipient}",
        reason=Reason.INHERITED_KEY_MISSING,
    )


class _Content:
    """One envelope's content, decrypted and judged once for all its served recipients. The
    outcome (or the error) is kept; :class:`RevocationUnknownError` and
    :class:`StoreUnavailableError` are kept too, as they end the whole opening anyway."""

    def __init__(
        self,
        envelope: VerifiedEnvelope | VerifiedChunkedHeader,
        validator: CertificateValidator,
        deliver: Callable[[bytes], Path] | None = None,
        file_limits: XmlLimits = DEFAULT_LIMITS,
    ) -> None:
        self.envelope = envelope
        self._validator = validator
        self._file_limits = file_limits
        self.file: Path | None = None  # where a chunked document was delivered
        if deliver is None:
            assert isinstance(envelope, VerifiedEnvelope)  # a chunked one brings its own
            single = envelope

            def decrypt(key: bytes) -> bytes:
                return decrypt_payload(single, key)

        else:
            delivering = deliver

            def decrypt(key: bytes) -> bytes:
                # Into a file; read from it only to be judged (:meth:`judge`): no copy of the
                # bytes is kept beside the one parsed tree the XML signature check needs.
                self.file = delivering(key)
                return b""

        self._decrypt = decrypt
        self._plaintext: bytes | BackboneError | None = None
        self._verdict: tuple[VerifiedXml, EdxmlMessage] | BackboneError | None = None

    def decrypt(self, content_key: bytes) -> bytes:
        """The plaintext. Every key that passed :func:`unwrap_content_key` is the same one
        (the header's commitment), so the first decryption stands for all."""
        if self._plaintext is None:
            try:
                self._plaintext = self._decrypt(content_key)
            except BackboneError as error:
                self._plaintext = error
        if isinstance(self._plaintext, BackboneError):
            raise self._plaintext
        return self._plaintext

    def judge(self) -> tuple[VerifiedXml, EdxmlMessage]:
        """Pre-scan and validate the plaintext (:meth:`decrypt` first), then verify its XML
        signature; the model read from the signed content. Raises the first problem."""
        assert isinstance(self._plaintext, bytes)  # decrypted: decrypt() raised otherwise
        if self._verdict is None:
            try:
                self._verdict = self._judged(self.file or self._plaintext)
            except BackboneError as error:
                self._verdict = error
        if isinstance(self._verdict, BackboneError):
            raise self._verdict
        return self._verdict

    def _judged(self, plaintext: bytes | Path) -> tuple[VerifiedXml, EdxmlMessage]:
        sender = OrganCode.parse(self.envelope.header.sender)
        if isinstance(plaintext, Path):
            return self._judged_file(plaintext, sender)
        # Cheap and bounded first: the pre-scan (inside examine) refuses what would make the
        # schema validation or the canonicalisation costly; the XML-DSig comes last.
        examination = examine(plaintext)
        message = examination.accepted()  # raises the first problem
        root = examination.root
        assert root is not None  # accepted: it parsed
        # The model was read from this tree; verified in place, its canonical form held to
        # the signed digest (digest_bound), it is the signed content: the model read once
        # is the signed content's, and nothing unsigned (comments, content in the signature)
        # passes verify_edxml. No second tree is built from the canonical bytes.
        verified = verify_edxml(root, self._validator, sender, in_place=True, digest_bound=True)
        return verified, message

    def _judged_file(self, path: Path, sender: OrganCode) -> tuple[VerifiedXml, EdxmlMessage]:
        """A chunked document's file, held once: parsed (the pre-scan bounds what follows)
        and its bytes dropped, its signature verified in that tree (no canonical bytes, no
        second tree), then validated and read from the same tree, the attachments decoded
        once, with nothing else of the document held by then."""
        root = parse_xml(path.read_bytes(), self._file_limits)
        verified = verify_edxml(root, self._validator, sender, in_place=True)
        return verified, examine_parsed(verified.signed_xml).accepted()

    def refused_content(self, plaintext: bytes | None) -> bytes | None:
        """The decrypted content to keep with a refusal: read back from a chunked
        document's file (refusals are rare; its bytes are not kept otherwise)."""
        if self.file is not None and self.file.exists():
            return self.file.read_bytes()
        return plaintext


def check_matches(
    header: EnvelopeHeader, message: EdxmlDocument | EdxmlStatus, recipient: str
) -> None:
    """The signed header must be bound to its parties (the router checks it too, but the
    recipient trusts no one on the path) and say what the signed edXML says, for the
    ``recipient`` served here."""
    check_binding(header)
    check_agreement(header, message, [recipient])
