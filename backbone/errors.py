"""Every error the backbone raises, in one place.

Each error carries a stable ``reason`` (a :class:`Reason`): the code that travels in
rejection events, logs and metrics. The human message says what exactly is wrong.

    BackboneError
    ├── EdxmlError              edXML that is not well-formed, not valid, or unsafe
    ├── OrganCodeError          a malformed organ code (either format) or system id
    ├── DocumentIdError         a DocumentId not of the shape <OrganId>,<yyyy/MM/dd>,<N>/<Notation>
    ├── DocumentBindingError    a DocumentId whose organ is not the party it must be
    ├── DirectoryError          a directory file that cannot be loaded, or an unknown entry
    │   └── UnknownAgencyError      an organ code the directory does not list
    ├── CertificateError        a certificate that fails a check
    │   ├── CertificateExpiredError
    │   ├── CertificateRevokedError
    │   ├── CertificateUntrustedError
    │   ├── CertificateBindingError
    │   ├── CertificateKeyUsageError
    │   └── RevocationUnknownError  no usable CRL: revocation status cannot be established
    ├── EnvelopeError           a secure envelope that cannot be trusted or opened
    │   ├── EnvelopeMalformedError
    │   ├── PayloadTamperedError
    │   ├── SignatureInvalidError
    │   ├── NotARecipientError
    │   ├── DecryptionError
    │   ├── HeaderMismatchError    the signed header and the signed edXML say different things
    │   ├── ChunkError             a chunk of a large document that does not belong where it came
    │   ├── DocumentTooLargeError  a chunked header announcing more than the configured limits
    │   └── XmlSignatureError      the XML-DSig signature inside an edXML does not verify
    ├── PkiError                the development CA cannot do what was asked, or CA/CRL
    │                           files configured for validation are unusable
    ├── BrokerUnavailableError  no RabbitMQ broker could be found, started or reached
    │   └── BrokerLoginRefusedError the broker refused the login (user or password wrong)
    ├── StagingError            a recipient cannot stage a large document (disk budget, expiry)
    ├── StoreUnavailableError   the router's database (SQLite or PostgreSQL) cannot be reached
    ├── ConfigurationError      a process's configuration cannot work (the message names the key)
    ├── GatewayError            the adapter's HTTP gateway refuses a request (reason says why)
    └── RoutingError            the router refuses an authentic envelope (reason says why)
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "BackboneError",
    "BrokerLoginRefusedError",
    "BrokerUnavailableError",
    "CertificateBindingError",
    "CertificateError",
    "CertificateExpiredError",
    "CertificateKeyUsageError",
    "CertificateRevokedError",
    "CertificateUntrustedError",
    "ChunkError",
    "ConfigurationError",
    "DecryptionError",
    "DirectoryError",
    "DocumentBindingError",
    "DocumentIdError",
    "DocumentTooLargeError",
    "EdxmlError",
    "EnvelopeError",
    "EnvelopeMalformedError",
    "GatewayError",
    "HeaderMismatchError",
    "NotARecipientError",
    "OrganCodeError",
    "PayloadTamperedError",
    "PkiError",
    "Reason",
    "RevocationUnknownError",
    "RoutingError",
    "SignatureInvalidError",
    "StagingError",
    "StoreUnavailableError",
    "UnknownAgencyError",
    "XmlSignatureError",
]


class Reason(StrEnum):
    """Stable reason codes. Values never change once published; add, never rename."""

    EDXML_NOT_WELL_FORMED = "edxml_not_well_formed"
    EDXML_UNSAFE = "edxml_unsafe"
    EDXML_TOO_LARGE = "edxml_too_large"
    EDXML_INVALID = "edxml_invalid"
    EDXML_TOO_COMPLEX = "edxml_too_complex"
    EDXML_UNSIGNED_CONTENT = "edxml_unsigned_content"
    ORGAN_CODE_MALFORMED = "organ_code_malformed"
    DIRECTORY_INVALID = "directory_invalid"
    AGENCY_UNKNOWN = "agency_unknown"
    CERT_EXPIRED = "cert_expired"
    CERT_NOT_YET_VALID = "cert_not_yet_valid"
    CERT_REVOKED = "cert_revoked"
    CERT_UNTRUSTED = "cert_untrusted"
    CERT_WRONG_BINDING = "cert_wrong_binding"
    CERT_WRONG_KEY_USAGE = "cert_wrong_key_usage"
    CERT_MALFORMED = "cert_malformed"
    REVOCATION_UNKNOWN = "revocation_unknown"
    CRL_EXPIRED = "crl_expired"
    ENVELOPE_MALFORMED = "envelope_malformed"
    ENVELOPE_TOO_LARGE = "envelope_too_large"
    PAYLOAD_TAMPERED = "payload_tampered"
    SIGNATURE_INVALID = "signature_invalid"
    NOT_A_RECIPIENT = "not_a_recipient"
    DECRYPTION_FAILED = "decryption_failed"
    XML_SIGNATURE_INVALID = "xml_signature_invalid"
    PKI_ERROR = "pki_error"
    BROKER_UNAVAILABLE = "broker_unavailable"
    BROKER_LOGIN_REFUSED = "broker_login_refused"
    BROKER_TOPOLOGY_MISSING = "broker_topology_missing"
    STORE_UNAVAILABLE = "store_unavailable"
    CONFIGURATION_INVALID = "configuration_invalid"
    CONFIG_FILE_UNREADABLE = "config_file_unreadable"
    CONFIG_NOT_YAML = "config_not_yaml"
    CONFIG_KEY_UNKNOWN = "config_key_unknown"
    CONFIG_KEY_MISSING = "config_key_missing"
    CONFIG_VALUE_INVALID = "config_value_invalid"
    OUTBOX_NAME_NOT_TAKEN = "outbox_name_not_taken"
    ARRIVAL_SENT_BY_ADAPTER = "arrival_sent_by_adapter"
    UNSPECIFIED = "unspecified"
    DUE_DATE_BEFORE_DOCUMENT = "due_date_before_document"
    # A DocumentId bound to its sender, and a header that says what the signed edXML says.
    DOCUMENT_ID_MALFORMED = "document_id_malformed"
    DOCUMENT_ID_NOT_SENDER = "document_id_not_sender"
    STATUS_MISADDRESSED = "status_misaddressed"
    HEADER_MISMATCH = "header_mismatch"
    # The router's own refusals, after the envelope itself checked out.
    SENDER_UNKNOWN = "sender_unknown"
    SENDER_INACTIVE = "sender_inactive"
    PUBLISHER_MISMATCH = "publisher_mismatch"
    RECIPIENT_UNKNOWN = "recipient_unknown"
    RECIPIENT_CLOSED = "recipient_closed"
    SENDER_CLOSED = "sender_closed"
    POLICY_DENIED = "policy_denied"
    DUPLICATE_CONFLICT = "duplicate_conflict"
    STATUS_UNKNOWN_DOCUMENT = "status_unknown_document"
    STATUS_IMPLAUSIBLE = "status_implausible"
    REFERENCED_DOCUMENT_UNKNOWN = "referenced_document_unknown"
    UNROUTABLE = "unroutable"
    POISON = "poison"
    RATE_LIMITED = "rate_limited"
    INBOX_FULL = "inbox_full"
    # The adapter's HTTP gateway (adapters.gateway): requests it refuses.
    GATEWAY_REQUEST_MALFORMED = "gateway_request_malformed"
    GATEWAY_SYSTEM_UNKNOWN = "gateway_system_unknown"
    GATEWAY_SIGNATURE_INVALID = "gateway_signature_invalid"
    GATEWAY_OPERATION_UNKNOWN = "gateway_operation_unknown"
    GATEWAY_BODY_TOO_LARGE = "gateway_body_too_large"
    GATEWAY_HASH_MISMATCH = "gateway_hash_mismatch"
    GATEWAY_SENDER_NOT_PERMITTED = "gateway_sender_not_permitted"
    GATEWAY_MESSAGE_TYPE_MISMATCH = "gateway_message_type_mismatch"
    GATEWAY_DOCUMENT_UNKNOWN = "gateway_document_unknown"
    GATEWAY_STATUS_INVALID = "gateway_status_invalid"
    GATEWAY_AGENCY_CHANGE_REFUSED = "gateway_agency_change_refused"
    # Large documents in chunks (backbone.envelope.stream_aead, chunked, staging).
    DOCUMENT_TOO_LARGE = "document_too_large"
    CHUNK_TAMPERED = "chunk_tampered"
    CHUNK_OUT_OF_ORDER = "chunk_out_of_order"
    CHUNK_FOREIGN = "chunk_foreign"
    CHUNK_SURPLUS = "chunk_surplus"
    DOCUMENT_TRUNCATED = "document_truncated"
    STAGING_FULL = "staging_full"
    DOCUMENT_INCOMPLETE = "document_incomplete"
    TOO_MANY_OPEN_DOCUMENTS = "too_many_open_documents"
    TOO_MANY_WAITING_CHUNKS = "too_many_waiting_chunks"
    # Routing through a change: a forwarded document its successor cannot open.
    INHERITED_KEY_MISSING = "inherited_key_missing"


class BackboneError(Exception):
    """Base of every error the backbone raises on purpose."""

    reason: Reason = Reason.UNSPECIFIED  # subclasses, or the raiser, say which

    def __init__(self, message: str, *, reason: Reason | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason

    def __str__(self) -> str:
        return f"[{self.reason.value}] {self.message}"


class EdxmlError(BackboneError):
    """edXML that cannot be accepted: ``line`` and ``path`` locate the (first) problem.

    ``backbone.edxml.collect_issues`` lists every problem of a file at once."""

    reason = Reason.EDXML_INVALID

    def __init__(
        self,
        message: str,
        *,
        reason: Reason | None = None,
        line: int | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.line = line
        self.path = path


class OrganCodeError(BackboneError):
    reason = Reason.ORGAN_CODE_MALFORMED


class DocumentIdError(BackboneError):
    reason = Reason.DOCUMENT_ID_MALFORMED


class DocumentBindingError(BackboneError):
    """A document or take-back whose DocumentId names another organ than its sender
    (``document_id_not_sender``), or a status not addressed to the document's original
    sender or addressed to its own sender (``status_misaddressed``)."""

    reason = Reason.DOCUMENT_ID_NOT_SENDER


class DirectoryError(BackboneError):
    reason = Reason.DIRECTORY_INVALID


class UnknownAgencyError(DirectoryError):
    reason = Reason.AGENCY_UNKNOWN


class CertificateError(BackboneError):
    reason = Reason.CERT_MALFORMED


class CertificateExpiredError(CertificateError):
    """Outside its validity period (``reason`` tells expired from not yet valid)."""

    reason = Reason.CERT_EXPIRED


class CertificateRevokedError(CertificateError):
    reason = Reason.CERT_REVOKED


class CertificateUntrustedError(CertificateError):
    """Does not chain to a configured trust anchor."""

    reason = Reason.CERT_UNTRUSTED


class CertificateBindingError(CertificateError):
    """Valid, but issued to another organ code than the one claimed."""

    reason = Reason.CERT_WRONG_BINDING


class CertificateKeyUsageError(CertificateError):
    reason = Reason.CERT_WRONG_KEY_USAGE


class RevocationUnknownError(CertificateError):
    """No CRL, or only an expired one, from the issuer: refused, never assumed unrevoked."""

    reason = Reason.REVOCATION_UNKNOWN


class EnvelopeError(BackboneError):
    reason = Reason.ENVELOPE_MALFORMED


class EnvelopeMalformedError(EnvelopeError):
    reason = Reason.ENVELOPE_MALFORMED


class PayloadTamperedError(EnvelopeError):
    """The encrypted payload does not match the digest the sender signed."""

    reason = Reason.PAYLOAD_TAMPERED


class SignatureInvalidError(EnvelopeError):
    """The sender's signature does not verify over the envelope header."""

    reason = Reason.SIGNATURE_INVALID


class NotARecipientError(EnvelopeError):
    """The envelope carries no key wrap for the organ code trying to open it."""

    reason = Reason.NOT_A_RECIPIENT


class DecryptionError(EnvelopeError):
    reason = Reason.DECRYPTION_FAILED


class HeaderMismatchError(EnvelopeError):
    """The envelope header claims something (kind, type, code, parties, DocumentId, due
    date) the signed edXML inside does not say."""

    reason = Reason.HEADER_MISMATCH


class ChunkError(EnvelopeError):
    """A chunk that is not the one the signed chunked header announces at its place: altered
    (``chunk_tampered``), at another index (``chunk_out_of_order``), of another document
    (``chunk_foreign``), beyond the last (``chunk_surplus``), or a document that ended
    without its last chunk (``document_truncated``)."""

    reason = Reason.CHUNK_TAMPERED


class DocumentTooLargeError(EnvelopeError):
    """A chunked header announcing a document, chunk size or chunk count beyond the limits:
    refused before any chunk is read."""

    reason = Reason.DOCUMENT_TOO_LARGE


class XmlSignatureError(EnvelopeError):
    reason = Reason.XML_SIGNATURE_INVALID


class PkiError(BackboneError):
    reason = Reason.PKI_ERROR


class BrokerUnavailableError(BackboneError):
    reason = Reason.BROKER_UNAVAILABLE


class BrokerLoginRefusedError(BrokerUnavailableError):
    """The broker answered but refused the login: retrying with the same password cannot
    help, so a process refuses to start on it (a running one keeps reconnecting)."""

    reason = Reason.BROKER_LOGIN_REFUSED


class StagingError(BackboneError):
    """A recipient cannot stage a large document: its disk budget would be exceeded
    (``staging_full``), or it stayed incomplete past its timeout (``document_incomplete``)."""

    reason = Reason.STAGING_FULL


class StoreUnavailableError(BackboneError):
    reason = Reason.STORE_UNAVAILABLE


class ConfigurationError(BackboneError):
    """A configuration that cannot work: a key missing or wrong, a folder already served."""

    reason = Reason.CONFIGURATION_INVALID


class GatewayError(BackboneError):
    """A request the adapter's HTTP gateway refuses. Always raised with an explicit
    ``reason``: it is the response's ``ErrorCode``."""

    reason = Reason.GATEWAY_REQUEST_MALFORMED


class RoutingError(BackboneError):
    """An authentic envelope the router refuses: unknown parties, policy, duplicates,
    implausible statuses. Always raised with an explicit ``reason``."""

    reason = Reason.POLICY_DENIED
