"""The gateway's status 01 is sealed once: two callers sealing the same owed 01 at the same
time (after a restart: the software's repeated ``done`` and the owed-01 loop) publish the
first one kept, never two different envelopes (the router would refuse the second as a
``duplicate_conflict``). Found by the gateway fault scenario (tests/faults)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from adapters.gateway.state import GatewayState, doc_id_of_received

AT = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def owing_state(root: Path) -> tuple[GatewayState, str]:
    state = GatewayState(root)
    state.store_received(
        envelope_id="e-1",
        recipient="000.00.00.H41",
        message_type="edoc",
        document_id="000.00.00.G22,2026/03/04,1/VP",
        status_code=None,
        from_code="000.00.00.G22",
        edxml=b"<edXML/>",
        at=AT,
    )
    doc_id = doc_id_of_received("e-1", "000.00.00.H41")
    owed = state.set_received_status(doc_id, "done", "", AT)
    assert owed is not None
    assert owed.sealed is None
    return state, doc_id


def test_the_first_sealed_01_kept_is_the_one_every_caller_publishes(tmp_path: Path) -> None:
    state, doc_id = owing_state(tmp_path)
    assert state.keep_arrival(doc_id, b"sealed first") == b"sealed first"
    assert state.keep_arrival(doc_id, b"sealed again") == b"sealed first"
    [owed] = state.arrivals_owed()
    assert owed.sealed == b"sealed first"
    # A repeated done hands out the kept bytes too.
    again = state.set_received_status(doc_id, "done", "", AT)
    assert again is not None
    assert again.sealed == b"sealed first"


def test_a_01_sealed_after_the_other_caller_sent_it_is_not_kept(tmp_path: Path) -> None:
    state, doc_id = owing_state(tmp_path)
    state.keep_arrival(doc_id, b"sealed first")
    state.arrival_sent(doc_id)
    assert state.keep_arrival(doc_id, b"sealed late") is None
    assert state.arrivals_owed() == []
