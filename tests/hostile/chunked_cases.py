"""The chunked form's hostile cases (issue 18): every case, the reason it must get, and
where that is proven.

``source`` is either ``build:<name>``, a message sequence made per run by
:mod:`tests.hostile.chunked_build` and run by ``tests/test_chunked_hostile.py`` against the
real broker and router — genuine messages first, then the hostile one, then the rest of the
genuine document — or ``test:<file>::<test>``, a case that needs its own set-up (an adapter
with an injected clock, a cap lowered, thousands of headers) and is proven by that test,
listed here so that the corpus names every attack of the chunked form in one place.

For a ``build:`` case the router must refuse the hostile message with the reason, tell the
document's sender (a ``rejected`` event naming the envelope), quarantine it, never forward
it to the recipient's inbox, and forward the genuine messages around it as if it had not
come.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from backbone.errors import Reason

__all__ = ["CHUNKED_CASES", "ChunkedCase"]


@dataclass(frozen=True, slots=True)
class ChunkedCase:
    id: str
    what: str
    expect: Reason
    source: str
    mentions: tuple[str, ...] = ()  # the refusal's message must contain each


R = Reason
_E2E = "test:tests/test_chunked_end_to_end.py::"
_HOSTILE = "test:tests/test_chunked_hostile.py::"

CHUNKED_CASES: Final[tuple[ChunkedCase, ...]] = (
    # -- the header -------------------------------------------------------------------------
    ChunkedCase("header-announcing-terabytes", "4 TiB in 1 GiB chunks, signed with another "
                "agency's key: refused by the limit before the signature is checked",
                R.DOCUMENT_TOO_LARGE, "build:header_announcing_terabytes",
                ("max_document_bytes",)),
    ChunkedCase("header-count-disagrees", "one chunk digest fewer than the document and "
                "chunk sizes need, signed by the sender (unreadable: its publisher is told)",
                R.ENVELOPE_MALFORMED,
                "build:header_count_disagrees", ("chunk",)),
    ChunkedCase("header-payload-size-disagrees", "payload_size one byte more than the chunks' "
                "ciphertext, signed by the sender", R.ENVELOPE_MALFORMED,
                "build:header_payload_size_disagrees", ("payload_size",)),
    # -- a chunk against its routed header ---------------------------------------------------
    ChunkedCase("chunk-wrong-digest", "a chunk with one ciphertext bit flipped",
                R.CHUNK_TAMPERED, _E2E
                + "test_a_corrupted_chunk_is_refused_as_tampered_and_the_sender_told_then_resent"),
    ChunkedCase("chunk-last-truncated", "the last chunk cut 100 bytes short",
                R.CHUNK_TAMPERED, "build:last_chunk_truncated", ("bytes, not",)),
    ChunkedCase("chunk-foreign", "a chunk of a document whose header was never routed",
                R.CHUNK_FOREIGN, _E2E + "test_chunks_whose_header_never_comes_are_refused"
                "_as_foreign_without_holding_up_others"),
    ChunkedCase("chunk-surplus", "a chunk numbered past the header's count",
                R.CHUNK_SURPLUS, "build:chunk_surplus", ("announces",)),
    ChunkedCase("chunk-reordered", "chunk 2's ciphertext under index 1",
                R.CHUNK_OUT_OF_ORDER, "build:chunk_reordered", ("carries chunk 2's ciphertext",)),
    ChunkedCase("chunk-replayed-into-another-document", "a chunk of a routed document "
                "relabelled as the same chunk of the sender's next document",
                R.CHUNK_TAMPERED, "build:chunk_replayed_into_another_document", ("chunk 1",)),
    ChunkedCase("chunk-by-another-account", "another agency's account publishing a chunk of "
                "the sender's document (that account is told, not the sender)",
                R.PUBLISHER_MISMATCH, "build:chunk_by_another_account", ("published by account",)),
    # -- exhaustion --------------------------------------------------------------------------
    ChunkedCase("thousands-half-sent", "2,000 headers from one sender whose chunks never come",
                R.TOO_MANY_OPEN_DOCUMENTS, _HOSTILE
                + "test_thousands_of_half_sent_documents_are_capped_and_the_router_goes_on",
                ("max_open_chunked_per_sender",)),
    ChunkedCase("chunks-flooded-without-header", "one account publishing 12 chunks of "
                "documents whose headers never come, past its bound of waiting chunks (3 "
                "here): refused at once, while another account's early chunks wait and pass",
                R.TOO_MANY_WAITING_CHUNKS, _HOSTILE
                + "test_an_account_flooding_chunks_of_no_header_is_bounded_and_another_still_waits",
                ("max_waiting_chunks_per_account",)),
    ChunkedCase("never-completes", "a document whose chunks stop: expired at the recipient on "
                "the injected clock, its staging reclaimed, the sender told",
                R.DOCUMENT_INCOMPLETE, _E2E + "test_an_incomplete_document_expires_its_"
                "staging_is_reclaimed_and_the_sender_told"),
    ChunkedCase("over-staging-budget", "a document larger than the recipient's staging budget",
                R.STAGING_FULL, _E2E
                + "test_a_document_over_the_staging_budget_is_refused_with_02_and_nothing_kept"),
)  # fmt: skip
