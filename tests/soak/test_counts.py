"""The soak's end-of-run count on folders written the way the drop-folder adapters write
them: it must find a lost delivery, one delivered twice, one that should not have arrived,
a missing status and an unanswered resend or refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backbone.wire.events import EventType
from tests.soak.counts import count
from tests.soak.traffic import G22, Ledger

H41, H41B = "000.00.00.H41", "000.07.12.H41"
DOC_1, DOC_2, RESENT, REFUSED = "G22,1/VP", "G22,2/VP", "G01,3/VP", "G01,4/VP"


def deliver(folder: Path, entry: str, document: str) -> None:
    (folder / "inbox" / entry).mkdir(parents=True)
    (folder / "inbox" / entry / "metadata.json").write_text(json.dumps({"document_id": document}))


def status(folder: Path, name: str, document: str, sender: str) -> None:
    (folder / "status").mkdir(parents=True, exist_ok=True)
    record = {"document_id": document, "sender": sender, "status_code": "01"}
    (folder / "status" / f"{name}.json").write_text(json.dumps(record))


@pytest.fixture
def world(tmp_path: Path) -> tuple[Ledger, dict[str, Path], Path]:
    """Two documents of G22 (one to H41, one to both), everything arrived and answered."""
    folders = {H41: tmp_path / H41, H41B: tmp_path / H41B}
    sender = tmp_path / G22
    ledger = Ledger(documents={DOC_1: (H41,), DOC_2: (H41, H41B)})
    ledger.resent.add(RESENT)
    ledger.events[EventType.DUPLICATE][RESENT] += 1
    ledger.refused[REFUSED] = "signed with another agency's key"
    ledger.events[EventType.REJECTED][REFUSED] += 1
    deliver(folders[H41], "a", DOC_1)
    deliver(folders[H41], "b", DOC_2)
    deliver(folders[H41B], "c", DOC_2)
    for name, (document, recipient) in enumerate([(DOC_1, H41), (DOC_2, H41), (DOC_2, H41B)]):
        status(sender, str(name), document, recipient)
    return ledger, folders, sender


def test_a_complete_run_has_no_problems(world: tuple[Ledger, dict[str, Path], Path]) -> None:
    counts = count(*world)
    assert (counts.deliveries, counts.delivered, counts.statuses) == (3, 3, 3)
    assert counts.problems == []


def test_a_delivery_missing_is_lost_and_its_status_missing(
    world: tuple[Ledger, dict[str, Path], Path],
) -> None:
    ledger, folders, sender = world
    (folders[H41B] / "inbox" / "c" / "metadata.json").unlink()
    (folders[H41B] / "inbox" / "c").rmdir()
    (sender / "status" / "2.json").unlink()
    counts = count(ledger, folders, sender)
    assert (counts.lost, counts.statuses) == (1, 2)
    assert len(counts.problems) == 2


def test_a_document_written_twice_is_a_duplicate(
    world: tuple[Ledger, dict[str, Path], Path],
) -> None:
    ledger, folders, sender = world
    deliver(folders[H41], "again", DOC_1)
    assert count(ledger, folders, sender).duplicates == 1


def test_a_refused_envelope_delivered_is_unexpected(
    world: tuple[Ledger, dict[str, Path], Path],
) -> None:
    ledger, folders, sender = world
    deliver(folders[H41B], "refused", REFUSED)
    counts = count(ledger, folders, sender)
    assert counts.unexpected == 1
    assert counts.problems


def unanswer(ledger: Ledger) -> None:
    """Take back the router's answers to the resend and the refused envelope."""
    ledger.events[EventType.DUPLICATE][RESENT] = 0
    ledger.events[EventType.REJECTED][REFUSED] = 0


def test_a_resend_or_refusal_nobody_answered_is_a_problem(
    world: tuple[Ledger, dict[str, Path], Path],
) -> None:
    unanswer(world[0])
    problems = count(*world).problems
    assert problems == ["1 resends not answered", "1 refusals not told the sender"]


def test_a_resend_routed_again_and_a_refusal_dead_lettered_are_answers(
    world: tuple[Ledger, dict[str, Path], Path],
) -> None:
    ledger = world[0]
    unanswer(ledger)
    ledger.events[EventType.ROUTED][RESENT] = 2
    ledger.events[EventType.DEAD_LETTERED][REFUSED] = 1
    counts = count(*world)
    assert (counts.resends_routed_again, counts.refusals_dead_lettered) == (1, 1)
    assert counts.problems == []
