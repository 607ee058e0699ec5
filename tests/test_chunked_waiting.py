"""The router's count of chunks waiting for their header, per publishing account
(``backbone.router.chunks.WaitingChunks``), on an injected clock: the bound per account, a
chunk admitted again not counted twice, and a chunk counted until it is found or its wait
ends. The broker-level proof is in tests/test_chunked_hostile.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backbone.router.chunks import WaitingChunks
from tests.support.tracking_fixtures import ManualClock

START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
WAIT = timedelta(seconds=30)
ENVELOPE = "0c7d1f1e-5a0b-4a3c-9a53-1d2f3e4a5b6c"


def _waiting(clock: ManualClock, per_account: int = 2) -> WaitingChunks:
    return WaitingChunks(per_account=per_account, wait=WAIT, clock=clock)


def test_an_account_at_its_bound_has_its_next_chunk_refused_and_others_are_not() -> None:
    waiting = _waiting(ManualClock(START))
    assert waiting.admit("g22", ENVELOPE, 0)
    assert waiting.admit("g22", ENVELOPE, 1)
    assert not waiting.admit("g22", ENVELOPE, 2)
    assert waiting.admit("h41", ENVELOPE, 2)  # another account: its own bound
    assert (waiting.count("g22"), waiting.count("h41"), len(waiting)) == (2, 1, 3)
    assert not waiting.has_room("g22")
    assert waiting.has_room("h41")


def test_a_chunk_waiting_already_is_admitted_again_without_counting_twice() -> None:
    waiting = _waiting(ManualClock(START))
    assert waiting.admit("g22", ENVELOPE, 0)
    assert waiting.admit("g22", ENVELOPE, 0)
    assert waiting.count("g22") == 1


def test_a_chunk_found_frees_its_place_at_once() -> None:
    waiting = _waiting(ManualClock(START))
    waiting.admit("g22", ENVELOPE, 0)
    waiting.admit("g22", ENVELOPE, 1)
    waiting.found("g22", ENVELOPE, 0)
    waiting.found("g22", ENVELOPE, 7)  # never counted: nothing changes
    assert waiting.count("g22") == 1
    assert waiting.admit("g22", ENVELOPE, 2)


def test_a_chunk_counts_until_its_wait_ends_and_no_longer() -> None:
    clock = ManualClock(START)
    waiting = _waiting(clock)
    waiting.admit("g22", ENVELOPE, 0)
    clock.now += WAIT / 2
    waiting.admit("g22", ENVELOPE, 1)
    clock.now = START + WAIT - timedelta(microseconds=1)
    assert not waiting.admit("g22", ENVELOPE, 2)
    clock.now = START + WAIT  # the first one's wait is over
    assert waiting.count("g22") == 1
    assert waiting.admit("g22", ENVELOPE, 2)
    clock.now += WAIT
    assert (waiting.count("g22"), len(waiting)) == (0, 0)


def test_an_unknown_publisher_is_counted_as_one_account() -> None:
    waiting = _waiting(ManualClock(START), per_account=1)
    assert waiting.admit(None, ENVELOPE, 0)
    assert not waiting.admit(None, ENVELOPE, 1)
