"""The hostile-input corpus: every case, the layer that must refuse it, the answer it gets.

``source`` is a file under ``tests/hostile/inputs/``, ``shared:<name>`` (a vendor sample read
in place from ``../shared/interop/edxml``), or ``build:<name>`` (made per run by
:mod:`tests.hostile.build`, because it needs this run's PKI or is too big to store).

Layers (the router never sees plaintext, so each attack is refused where it can be seen):

- ``adapter-send``: the file is dropped in the sending agency's ``outbox/``; it must land in
  ``failed/`` with ``<name>.error.json`` carrying the reason, and nothing is published.
- ``router``: the envelope is published on the submit exchange; the router must quarantine
  it (``vdx-reason``; the body itself only when small and its header readable, else a record
  of it with its SHA-256, never the bulk) and send a ``rejected`` event with the reason to
  the party it can name (the authenticated sender, or else the publisher). ``duplicate`` is
  the one answer that is not a refusal: a byte-identical replay is answered with the first
  outcome and delivered once.
- ``adapter-receive``: an authentic envelope (a dishonest sender seals the content with its
  real key) routed to the recipient, whose adapter must keep it in ``rejected/`` with the
  reason and answer the sender with status 02 whose Description starts with ``[reason]``.

``tests/test_hostile.py`` runs every case against the real broker, router and adapters.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

from backbone.errors import Reason

__all__ = ["CASES", "DUPLICATE", "Case", "Layer"]

DUPLICATE: Final = "duplicate"


class Layer(StrEnum):
    SEND = "adapter-send"
    ROUTER = "router"
    RECEIVE = "adapter-receive"


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    what: str
    layer: Layer
    expect: Reason | Literal["duplicate"]
    source: str
    sign: bool = False  # adapter-receive: the dishonest sender XML-signs the content first


R = Reason
SEND, ROUTER, RECEIVE = Layer.SEND, Layer.ROUTER, Layer.RECEIVE

CASES: Final[tuple[Case, ...]] = (
    # -- adapter-send: the sending adapter refuses before sealing ---------------------------
    Case("send-not-well-formed", "XML cut off mid-element", SEND,
         R.EDXML_NOT_WELL_FORMED, "inputs/not_well_formed.edxml"),
    Case("send-vendor-junk-before-declaration", "vendor sample with 4 bytes before <?xml",
         SEND, R.EDXML_NOT_WELL_FORMED, "shared:edoc_new.edxml"),
    Case("send-non-utf8-text", "declared UTF-8, text in Windows-1258/Latin-1 bytes", SEND,
         R.EDXML_NOT_WELL_FORMED, "inputs/non_utf8_text.edxml"),
    Case("send-xxe-file", "external entity reading file:///etc/passwd", SEND,
         R.EDXML_UNSAFE, "inputs/xxe_file.edxml"),
    Case("send-xxe-parameter-entity", "external parameter entity fetching a remote DTD", SEND,
         R.EDXML_UNSAFE, "inputs/xxe_parameter_entity.edxml"),
    Case("send-billion-laughs", "nested entity expansion bomb (10^9 'lol')", SEND,
         R.EDXML_UNSAFE, "inputs/billion_laughs.edxml"),
    Case("send-quadratic-blowup", "one 4 KiB entity referenced 2,000 times", SEND,
         R.EDXML_UNSAFE, "inputs/quadratic_blowup.edxml"),
    Case("send-doctype-after-comment", "external DTD hidden after a prolog comment", SEND,
         R.EDXML_UNSAFE, "inputs/doctype_after_comment.edxml"),
    Case("send-utf16-doctype", "UTF-16 document with an external entity", SEND,
         R.EDXML_UNSAFE, "inputs/utf16_doctype.edxml"),
    Case("send-deep-nesting", "100,000 nested elements", SEND,
         R.EDXML_UNSAFE, "build:deep_nesting"),
    Case("send-attribute-flood", "80,000 attributes on one element", SEND,
         R.EDXML_TOO_COMPLEX, "build:attribute_flood"),
    Case("send-absurd-size", "a 64 MiB document: over the edXML and the document limits, "
         "refused by its size before it is read", SEND, R.DOCUMENT_TOO_LARGE, "build:oversized"),
    Case("send-document-too-large", "a valid document just over max_document_bytes (16 MiB)",
         SEND, R.DOCUMENT_TOO_LARGE, "build:document_too_large"),
    Case("send-due-before-promulgation", "a document promulgated today, due in 2001", SEND,
         R.DUE_DATE_BEFORE_DOCUMENT, "build:due_before_promulgation"),
    Case("send-wrong-namespace", "the 2015 namespace instead of QCVN_102_2016", SEND,
         R.EDXML_INVALID, "inputs/wrong_namespace.edxml"),
    Case("send-no-namespace", "edXML elements in no namespace", SEND,
         R.EDXML_INVALID, "inputs/no_namespace.edxml"),
    Case("send-missing-document-id", "MessageHeader without DocumentId", SEND,
         R.EDXML_INVALID, "inputs/missing_document_id.edxml"),
    Case("send-missing-from", "MessageHeader without From", SEND,
         R.EDXML_INVALID, "inputs/missing_from.edxml"),
    Case("send-missing-to", "MessageHeader without any To", SEND,
         R.EDXML_INVALID, "inputs/missing_to.edxml"),
    Case("send-malformed-from-organ-code", "From/OrganId '28.22.H17' (three parts)", SEND,
         R.EDXML_INVALID, "inputs/malformed_from_organ_code.edxml"),
    Case("send-malformed-to-organ-code", "a To/OrganId 'H4.1'", SEND,
         R.EDXML_INVALID, "inputs/malformed_to_organ_code.edxml"),
    Case("send-from-another-agency", "From names an agency this adapter does not serve",
         SEND, R.PUBLISHER_MISMATCH, "inputs/from_another_agency.edxml"),
    Case("send-unknown-recipient", "a To the directory does not list", SEND,
         R.RECIPIENT_UNKNOWN, "inputs/unknown_recipient.edxml"),
    Case("send-truncated-base64", "attachment base64 missing its last character", SEND,
         R.EDXML_INVALID, "inputs/truncated_base64_attachment.edxml"),
    Case("send-invalid-base64", "attachment base64 with '!' in it", SEND,
         R.EDXML_INVALID, "inputs/invalid_base64_attachment.edxml"),
    # -- router: envelope-level attacks, refused without seeing plaintext -------------------
    Case("router-not-an-envelope", "an HTTP request on the submit exchange", ROUTER,
         R.ENVELOPE_MALFORMED, "build:garbage"),
    Case("router-large-garbage", "1 MiB of bulk under the size limit, no envelope: the "
         "quarantine keeps a record of it, not the bulk", ROUTER,
         R.ENVELOPE_MALFORMED, "build:large_garbage"),
    Case("router-truncated-envelope", "a genuine envelope cut after 200 bytes", ROUTER,
         R.ENVELOPE_MALFORMED, "build:truncated_envelope"),
    Case("router-non-utf8-header", "header JSON with a Latin-1 byte", ROUTER,
         R.ENVELOPE_MALFORMED, "build:non_utf8_header"),
    Case("router-header-schema", "header version 2 with an unknown field", ROUTER,
         R.ENVELOPE_MALFORMED, "build:header_schema"),
    Case("router-malformed-recipient-code", "header recipient '28.22.H17'", ROUTER,
         R.ENVELOPE_MALFORMED, "build:malformed_recipient_code"),
    Case("router-oversized", "an envelope one byte over the router's limit", ROUTER,
         R.ENVELOPE_TOO_LARGE, "build:oversized_envelope"),
    Case("router-header-key-bomb", "100,000 unknown header keys (one pydantic error each)",
         ROUTER, R.ENVELOPE_MALFORMED, "build:header_key_bomb"),
    Case("router-header-oversized-for-one-recipient",
         "a signed 1-recipient header of 512 KiB (a timestamp with 500,000 digits)", ROUTER,
         R.ENVELOPE_MALFORMED, "build:header_oversized_for_one_recipient"),
    Case("router-tampered-header", "DocumentId changed after signing", ROUTER,
         R.SIGNATURE_INVALID, "build:tampered_header"),
    Case("router-tampered-key-wrap", "a bit of the recipient's key wrap flipped", ROUTER,
         R.SIGNATURE_INVALID, "build:tampered_key_wrap"),
    Case("router-tampered-signature", "a bit of the header signature flipped", ROUTER,
         R.SIGNATURE_INVALID, "build:tampered_signature"),
    Case("router-tampered-payload", "the last ciphertext byte flipped", ROUTER,
         R.PAYLOAD_TAMPERED, "build:tampered_payload"),
    Case("router-expired-certificate", "sender certificate expired four days ago", ROUTER,
         R.CERT_EXPIRED, "build:expired_certificate"),
    Case("router-not-yet-valid-certificate", "sender certificate valid from in two days",
         ROUTER, R.CERT_NOT_YET_VALID, "build:not_yet_valid_certificate"),
    Case("router-revoked-certificate", "sender certificate on the CA's CRL", ROUTER,
         R.CERT_REVOKED, "build:revoked_certificate"),
    Case("router-untrusted-certificate", "sender certificate from a foreign CA", ROUTER,
         R.CERT_UNTRUSTED, "build:untrusted_certificate"),
    Case("router-wrongly-bound-certificate", "province signs with a district's certificate",
         ROUTER, R.CERT_WRONG_BINDING, "build:wrongly_bound_certificate"),
    Case("router-wrong-key-usage", "certificate allowing keyEncipherment only", ROUTER,
         R.CERT_WRONG_KEY_USAGE, "build:wrong_key_usage_certificate"),
    Case("router-sender-unknown", "sender not in the directory", ROUTER,
         R.SENDER_UNKNOWN, "build:sender_unknown"),
    Case("router-forged-sender", "a compromised adapter names another agency as sender",
         ROUTER, R.PUBLISHER_MISMATCH, "build:forged_sender"),
    Case("router-replay-by-another-account", "another agency replays a routed envelope",
         ROUTER, R.PUBLISHER_MISMATCH, "build:replay_by_another_account"),
    Case("router-replay-identical", "the sender's routed envelope published again", ROUTER,
         DUPLICATE, "build:replay_identical"),
    Case("router-resealed-document", "the same DocumentId sealed again, other content",
         ROUTER, R.DUPLICATE_CONFLICT, "build:resealed_document"),
    Case("router-unknown-recipient", "a recipient not in the directory", ROUTER,
         R.RECIPIENT_UNKNOWN, "build:unknown_recipient"),
    Case("router-status-never-sent", "status 03 about a document never sent that way",
         ROUTER, R.STATUS_UNKNOWN_DOCUMENT, "build:status_never_sent"),
    Case("router-status-implausible", "status code 09", ROUTER,
         R.STATUS_IMPLAUSIBLE, "build:status_implausible"),
    Case("router-revocation-of-unknown", "a revocation of a document never sent", ROUTER,
         R.REFERENCED_DOCUMENT_UNKNOWN, "build:referenced_document_unknown"),
    # A DocumentId bound to its sender (issue 14, finding 2).
    Case("router-document-id-control-characters", "a DocumentId with a newline and an ESC",
         ROUTER, R.DOCUMENT_ID_MALFORMED, "build:document_id_control_characters"),
    Case("router-document-id-not-a-document-id", "a DocumentId without date nor notation",
         ROUTER, R.DOCUMENT_ID_MALFORMED, "build:document_id_shapeless"),
    Case("router-decoy-under-anothers-document-id", "a new document under another's DocumentId",
         ROUTER, R.DOCUMENT_ID_NOT_SENDER, "build:decoy_under_anothers_document_id"),
    Case("router-revocation-of-anothers-document", "revoking a document another agency sent",
         ROUTER, R.DOCUMENT_ID_NOT_SENDER, "build:revocation_of_anothers_document"),
    Case("router-take-back-of-anothers-document", "13 about a document another agency sent",
         ROUTER, R.DOCUMENT_ID_NOT_SENDER, "build:take_back_of_anothers_document"),
    Case("router-document-id-of-the-recipient", "a document under its recipient's DocumentId",
         ROUTER, R.DOCUMENT_ID_NOT_SENDER, "build:document_id_of_the_recipient"),
    Case("router-status-to-a-third-party", "03 about one agency's document sent to another",
         ROUTER, R.STATUS_MISADDRESSED, "build:status_to_a_third_party"),
    Case("router-status-about-own-document", "06 from a document's own sender", ROUTER,
         R.STATUS_MISADDRESSED, "build:status_about_own_document"),
    Case("router-status-from-no-party", "02 about a document sent to someone else", ROUTER,
         R.STATUS_UNKNOWN_DOCUMENT, "build:status_from_no_party"),
    # -- adapter-receive: authentic envelopes with hostile content --------------------------
    Case("receive-not-well-formed", "sealed XML cut off mid-element", RECEIVE,
         R.EDXML_NOT_WELL_FORMED, "inputs/not_well_formed.edxml"),
    Case("receive-non-utf8-text", "sealed text in Latin-1 bytes", RECEIVE,
         R.EDXML_NOT_WELL_FORMED, "inputs/non_utf8_text.edxml"),
    Case("receive-xxe-file", "sealed external entity on file:///etc/passwd", RECEIVE,
         R.EDXML_UNSAFE, "inputs/xxe_file.edxml"),
    Case("receive-billion-laughs", "sealed entity expansion bomb", RECEIVE,
         R.EDXML_UNSAFE, "inputs/billion_laughs.edxml"),
    Case("receive-deep-nesting", "sealed 100,000 nested elements", RECEIVE,
         R.EDXML_UNSAFE, "build:deep_nesting"),
    Case("receive-wrong-namespace", "sealed edXML in the wrong namespace", RECEIVE,
         R.EDXML_INVALID, "inputs/wrong_namespace.edxml"),
    Case("receive-unsigned", "valid edXML without its XML-DSig signature", RECEIVE,
         R.XML_SIGNATURE_INVALID, "inputs/valid_with_attachment.edxml"),
    Case("receive-altered-after-signing", "Subject changed after XML-DSig signing", RECEIVE,
         R.XML_SIGNATURE_INVALID, "inputs/valid_with_attachment.edxml", sign=True),
    Case("receive-missing-document-id", "signed, but without DocumentId", RECEIVE,
         R.EDXML_INVALID, "inputs/missing_document_id.edxml", sign=True),
    Case("receive-malformed-organ-code", "signed, with a To/OrganId 'H4.1'", RECEIVE,
         R.EDXML_INVALID, "inputs/malformed_to_organ_code.edxml", sign=True),
    Case("receive-invalid-base64", "signed, attachment base64 with '!' in it", RECEIVE,
         R.EDXML_INVALID, "inputs/invalid_base64_attachment.edxml", sign=True),
    Case("receive-truncated-base64", "signed, attachment base64 cut short", RECEIVE,
         R.EDXML_INVALID, "inputs/truncated_base64_attachment.edxml", sign=True),
    Case("receive-from-differs", "signed edXML whose From is not the envelope's sender",
         RECEIVE, R.CERT_WRONG_BINDING, "inputs/from_another_agency.edxml", sign=True),
    Case("receive-document-id-mismatch", "signed edXML whose DocumentId is not the header's",
         RECEIVE, R.HEADER_MISMATCH, "build:document_id_mismatch"),
    Case("receive-business-type-mismatch", "a signed revocation under a header saying new (0)",
         RECEIVE, R.HEADER_MISMATCH, "build:business_type_mismatch"),
    Case("receive-recipient-not-in-to", "a header recipient the signed edXML's To lacks",
         RECEIVE, R.HEADER_MISMATCH, "build:recipient_not_in_to"),
    Case("receive-bad-key-wrap", "signed header wrapping a key that is not the content key",
         RECEIVE, R.DECRYPTION_FAILED, "build:bad_key_wrap"),
    Case("receive-due-before-promulgation", "signed, promulgated today but due in 2001",
         RECEIVE, R.DUE_DATE_BEFORE_DOCUMENT, "build:due_before_promulgation", sign=True),
    # Signed, then bulk or unsigned content added (issue 14, findings 1 and 7).
    Case("receive-many-attributes", "signed, then 80,000 attributes on one element", RECEIVE,
         R.EDXML_TOO_COMPLEX, "build:many_attributes", sign=True),
    Case("receive-empty-element-flood", "signed, then 200,000 empty elements", RECEIVE,
         R.EDXML_TOO_COMPLEX, "build:empty_element_flood", sign=True),
    Case("receive-namespace-flood", "signed, then 10,000 namespace declarations", RECEIVE,
         R.EDXML_TOO_COMPLEX, "build:namespace_flood", sign=True),
    Case("receive-deep-nesting-after-signing", "signed, then 1,000 nested elements", RECEIVE,
         R.EDXML_UNSAFE, "build:deep_nesting_after_signing", sign=True),
    Case("receive-comment-splitting-subject", "signed, then a comment inside the Subject",
         RECEIVE, R.EDXML_UNSIGNED_CONTENT, "build:comment_splitting_subject", sign=True),
    Case("receive-unsigned-object", "signed, then a ds:Object with a second Subject",
         RECEIVE, R.EDXML_UNSIGNED_CONTENT, "build:unsigned_object", sign=True),
)  # fmt: skip
