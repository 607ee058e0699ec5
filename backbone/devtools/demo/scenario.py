"""What the demo's agencies do, through their drop folders only, as their software would:
three documents across the tiers, and each recipient's clerk answering 03 → 04 → 05 → 06
once the previous status has reached the sender (01 is the recipient adapter's own).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from backbone.clock import edxml_now
from backbone.devtools.demo.lifecycle import DemoError
from backbone.devtools.demo.world import NAMES, DemoWorld
from backbone.edxml import (
    Business,
    BusinessDocType,
    Code,
    DocumentType,
    EdxmlDocument,
    EdxmlStatus,
    Organization,
    PromulgationInfo,
    ResponseFor,
    StatusCode,
    build,
)

__all__ = ["FLOW", "LETTERS", "DemoError", "Letter", "Pair", "Progress"]

GOVERNMENT_OFFICE = "000.00.00.G22"
MINISTRY = "000.00.00.G04"
NGHE_AN = "000.00.00.H41"
TAY_NINH, DISTRICT, COMMUNE, UNIT = (
    "000.00.00.H53",
    "000.00.32.H53",
    "000.21.32.H53",
    "001.21.32.H53",
)
FLOW = ("01", "03", "04", "05", "06")  # arrived, accepted, assigned, processing, completed


@dataclass(frozen=True, slots=True)
class Letter:
    """One document the demo drops into its sender's outbox."""

    label: str
    sender: str
    recipients: tuple[str, ...]
    number: int
    notation: str
    subject: str
    day: date = field(default_factory=lambda: edxml_now().date())  # Vietnam's day

    @property
    def document_id(self) -> str:
        return f"{self.sender},{self.day:%Y/%m/%d},{self.number}/{self.notation}"

    @property
    def file_name(self) -> str:
        return f"{self.number}-{self.notation}.edxml"

    def edxml(self) -> bytes:
        return build(
            EdxmlDocument(
                sender=Organization(organ_id=self.sender, organ_name=NAMES[self.sender]),
                recipients=tuple(
                    Organization(organ_id=code, organ_name=NAMES[code]) for code in self.recipients
                ),
                document_id=self.document_id,
                code=Code(code_number=str(self.number), code_notation=self.notation),
                promulgation_info=PromulgationInfo(place="Hà Nội", promulgation_date=self.day),
                document_type=DocumentType(type="1", type_name="Công văn"),
                subject=self.subject,
                business=Business(business_doc_type=BusinessDocType.NEW),
            )
        )


LETTERS = (
    Letter(
        "up",
        COMMUNE,
        (MINISTRY, GOVERNMENT_OFFICE),
        15,
        "UBND-VP",
        "V/v báo cáo kết quả liên thông văn bản điện tử",
    ),
    Letter("down", MINISTRY, (COMMUNE,), 120, "BNV-VP", "V/v hướng dẫn kết nối trục liên thông"),
    Letter(
        "fan-out",
        MINISTRY,
        (TAY_NINH, DISTRICT, COMMUNE, UNIT, NGHE_AN),
        121,
        "BNV-CCHC",
        "V/v triển khai gửi nhận văn bản điện tử bốn cấp",
    ),
)


@dataclass(frozen=True, slots=True)
class Pair:
    """A document and one of its recipients: one row of the progress table."""

    letter: Letter
    recipient: str


@dataclass
class Progress:
    """Per document and recipient, the statuses the sender has in its ``status/`` folder."""

    world: DemoWorld
    letters: tuple[Letter, ...] = LETTERS
    seen: dict[Pair, list[str]] = field(default_factory=dict)
    answered: dict[Pair, str] = field(default_factory=dict)  # the last status each clerk sent

    @property
    def pairs(self) -> list[Pair]:
        return [Pair(letter, code) for letter in self.letters for code in letter.recipients]

    @property
    def done(self) -> bool:
        return all("06" in self.seen.get(pair, []) for pair in self.pairs)

    def send_documents(self) -> None:
        for letter in self.letters:
            drop(self.world.folder(letter.sender), letter.file_name, letter.edxml())

    def refresh(self) -> list[tuple[Pair, str]]:
        """Read the senders' ``status/`` folders; the statuses that are new since last time.
        Raises :class:`DemoError` when a file the demo dropped ended in ``failed/``."""
        self._check_failed()
        pairs = {(p.letter.document_id, p.recipient): p for p in self.pairs}
        new: list[tuple[Pair, str]] = []
        for sender in {letter.sender for letter in self.letters}:
            for record in _statuses(self.world.folder(sender)):
                pair = pairs.get((record["document_id"], record["sender"]))
                if pair is None:
                    continue
                codes = self.seen.setdefault(pair, [])
                if record["status_code"] not in codes:
                    codes.append(record["status_code"])
                    new.append((pair, record["status_code"]))
        return new

    def answer(self) -> None:
        """Each recipient's clerk drops the next status once the sender has the last one."""
        for pair in self.pairs:
            last = self.answered.get(pair, "01")
            if last == "06" or last not in self.seen.get(pair, []):
                continue
            code = FLOW[FLOW.index(last) + 1]
            drop(self.world.folder(pair.recipient), _status_file(pair, code), _status(pair, code))
            self.answered[pair] = code

    def missing(self) -> list[str]:
        """``document → recipient: waiting for NN`` for every pair that has not reached 06."""
        lines = []
        for pair in self.pairs:
            seen = self.seen.get(pair, [])
            if "06" not in seen:
                waiting = next(code for code in FLOW if code not in seen)
                lines.append(f"{pair.letter.document_id} → {pair.recipient}: waiting for {waiting}")
        return lines

    def _check_failed(self) -> None:
        for code in NAMES:
            failed = self.world.folder(code) / "failed"
            for error_file in sorted(failed.glob("*.error.json")) if failed.is_dir() else []:
                error = json.loads(error_file.read_text(encoding="utf-8"))
                raise DemoError(
                    f"{code}'s adapter refused {error_file.name.removesuffix('.error.json')}: "
                    f"{error.get('reason')}: {error.get('message')}"
                )


def drop(folder: Path, name: str, data: bytes) -> None:
    """Write as agency software must: under a dot name, then renamed into ``outbox/``."""
    outbox = folder / "outbox"
    outbox.mkdir(parents=True, exist_ok=True)
    (outbox / f".{name}.tmp").write_bytes(data)
    os.replace(outbox / f".{name}.tmp", outbox / name)


def _statuses(folder: Path) -> list[dict[str, str]]:
    """The status records in ``status/`` (the ``.json`` is written before the ``.edxml``)."""
    status = folder / "status"
    if not status.is_dir():
        return []
    return [
        json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        for path in sorted(status.glob("*.edxml"))
    ]


def _status_file(pair: Pair, code: str) -> str:
    return f"status-{pair.letter.number}-{pair.letter.notation}-{code}.edxml"


def _status(pair: Pair, code: str) -> bytes:
    return build(
        EdxmlStatus(
            sender=Organization(organ_id=pair.recipient, organ_name=NAMES[pair.recipient]),
            response_for=ResponseFor(
                organ_id=pair.letter.sender, document_id=pair.letter.document_id
            ),
            status_code=StatusCode(code),
            timestamp=edxml_now(),
        )
    )
