"""The gateway's durable state: one SQLite file in ``gateway_state`` (WAL, synchronous FULL).

- ``received``: every document and status received for the systems' agencies, stored
  before the broker is acknowledged, until the software says ``updateStatus done``; with
  the status 01 owed for it (sealed once, kept until the broker confirmed it, so a crash
  resends the same bytes, which the router answers as a duplicate).
- ``sent`` and ``sent_to``: every ``sendEdoc``, keyed by its ``DocId`` (derived from the
  system and the file's SHA-256, so the same file sent twice is one row), with the sealed
  envelope kept until the broker confirmed it, and per recipient the send status (the
  router's events) and the receive status (the recipient's statuses).
- ``proposals``: agencies a hub's software proposed (``registerAgency``/``deleteAgency``).
- ``refused``: envelopes whose content a served agency refused (the sender was told).

The adapter never loads SQLAlchemy (import-linter): this is the standard library's sqlite3,
one connection, used from worker threads one call at a time.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from adapters.file_copies import place_copy

__all__ = [
    "ArrivalOwed",
    "GatewayState",
    "ReceivedRow",
    "SentRow",
    "SentToRow",
    "doc_id_of_received",
    "doc_id_of_sent",
]

_T = TypeVar("_T")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS received (
    doc_id        TEXT PRIMARY KEY,
    envelope_id   TEXT NOT NULL,
    recipient     TEXT NOT NULL,
    message_type  TEXT NOT NULL,           -- edoc | status
    document_id   TEXT NOT NULL,
    status_code   TEXT,                    -- a status's code (01...)
    from_code     TEXT NOT NULL,
    edxml         BLOB NOT NULL,
    created       TEXT NOT NULL,
    updated       TEXT NOT NULL,
    status        TEXT NOT NULL,           -- initial | processing | done | fail
    status_desc   TEXT NOT NULL,
    arrival_state TEXT NOT NULL,           -- none | owed | sent (status 01, documents)
    arrival       BLOB                     -- the sealed 01 while owed
);
CREATE INDEX IF NOT EXISTS received_pending ON received (message_type, status);
CREATE INDEX IF NOT EXISTS received_document ON received (document_id, recipient);
CREATE TABLE IF NOT EXISTS sent (
    doc_id        TEXT PRIMARY KEY,
    system        TEXT NOT NULL,
    message_type  TEXT NOT NULL,
    envelope_id   TEXT NOT NULL,
    document_id   TEXT NOT NULL,
    from_code     TEXT NOT NULL,
    title         TEXT NOT NULL,
    notation      TEXT NOT NULL,
    created       TEXT NOT NULL,
    sent_time     TEXT,                    -- NULL until the broker confirmed
    body          BLOB                     -- the sealed envelope, until confirmed
);
CREATE INDEX IF NOT EXISTS sent_envelope ON sent (envelope_id);
CREATE TABLE IF NOT EXISTS sent_to (
    doc_id        TEXT NOT NULL,
    to_code       TEXT NOT NULL,
    send_status   TEXT NOT NULL,
    send_desc     TEXT NOT NULL,
    receive_status TEXT NOT NULL,
    receive_desc  TEXT NOT NULL,
    received_time TEXT,
    PRIMARY KEY (doc_id, to_code)
);
CREATE TABLE IF NOT EXISTS events_seen (event_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS proposals (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    system        TEXT NOT NULL,
    action        TEXT NOT NULL,           -- register | delete
    agency        TEXT NOT NULL,
    details       TEXT NOT NULL,           -- JSON as the software sent it
    at            TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refused (
    envelope_id   TEXT NOT NULL,
    recipient     TEXT NOT NULL,
    sender        TEXT NOT NULL,
    document_id   TEXT NOT NULL,
    reason        TEXT NOT NULL,
    message       TEXT NOT NULL,
    at            TEXT NOT NULL,
    PRIMARY KEY (envelope_id, recipient)
);
"""

FILE_NAME: Final = "gateway.sqlite3"


def _doc_id(*parts: str) -> str:
    """24 hex digits, as the real axis' DocIds look; opaque to clients."""
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:24]


def doc_id_of_received(envelope_id: str, recipient: str) -> str:
    """The same on every gateway: a sender's ``receiverDocId`` is the recipient's DocId."""
    return _doc_id("received", envelope_id, recipient)


def doc_id_of_sent(system_id: str, file_sha256: str) -> str:
    return _doc_id("sent", system_id, file_sha256)


@dataclass(frozen=True, slots=True)
class ReceivedRow:
    doc_id: str
    envelope_id: str
    recipient: str
    message_type: str
    document_id: str
    status_code: str | None
    from_code: str
    created: str
    updated: str
    status: str
    status_desc: str


@dataclass(frozen=True, slots=True)
class ArrivalOwed:
    """A status 01 owed for a document the software has taken (``done``)."""

    doc_id: str
    document_id: str
    recipient: str
    sealed: bytes | None  # None until sealed


@dataclass(frozen=True, slots=True)
class SentRow:
    doc_id: str
    system: str
    message_type: str
    envelope_id: str
    document_id: str
    from_code: str
    title: str
    notation: str
    created: str
    sent_time: str | None
    body: bytes | None


@dataclass(frozen=True, slots=True)
class SentToRow:
    doc_id: str
    to_code: str
    send_status: str
    send_desc: str
    receive_status: str
    receive_desc: str
    received_time: str | None


# Processing order of the statuses a recipient sends (QCVN 102): a later one wins.
_ORDER: Final = ("01", "02", "03", "04", "05", "06")


def _rank(code: str) -> int:
    return _ORDER.index(code) + 1 if code in _ORDER else 0 if not code else len(_ORDER) + 1


_RECEIVED_COLUMNS: Final = (
    "doc_id, envelope_id, recipient, message_type, document_id, status_code, from_code, "
    "created, updated, status, status_desc"
)
_SENT_COLUMNS: Final = (
    "doc_id, system, message_type, envelope_id, document_id, from_code, title, notation, "
    "created, sent_time, body"
)
_SENT_TO_COLUMNS: Final = (
    "doc_id, to_code, send_status, send_desc, receive_status, receive_desc, received_time"
)


class GatewayState:
    """The SQLite file; every method has an ``async`` twin run in a worker thread (``a*``)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / FILE_NAME
        # Documents that came in chunks, one file per DocId (their ``edxml`` column empty).
        self.documents = directory / "documents"
        self.documents.mkdir(exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    async def run(self, function: Callable[..., _T], *args: Any) -> _T:
        """``function(*args)`` in a worker thread: SQLite's fsyncs stay off the event loop."""
        return await asyncio.to_thread(function, *args)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, params))

    # ------------------------------------------------------------------------ received

    def store_received(
        self,
        *,
        envelope_id: str,
        recipient: str,
        message_type: str,
        document_id: str,
        status_code: str | None,
        from_code: str,
        edxml: bytes,
        at: datetime,
        file: Path | None = None,
    ) -> bool:
        """Store a received item unless it is already here (a redelivery); whether new. A
        document that came in chunks comes as ``file`` (``edxml`` empty): it is kept in
        :attr:`documents` (linked or copied, never read into memory) before its row."""
        doc_id = doc_id_of_received(envelope_id, recipient)
        stamp = at.isoformat()
        if file is not None:
            self._keep_file(file, self._document_file(doc_id))
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO received (doc_id, envelope_id, recipient, message_type,"
                " document_id, status_code, from_code, edxml, created, updated, status,"
                " status_desc, arrival_state) VALUES (?,?,?,?,?,?,?,?,?,?,'initial','',?)",
                (
                    doc_id,
                    envelope_id,
                    recipient,
                    message_type,
                    document_id,
                    status_code,
                    from_code,
                    edxml,
                    stamp,
                    stamp,
                    "none",
                ),
            )
            return cursor.rowcount == 1

    def pending(self, recipients: frozenset[str], message_type: str) -> list[ReceivedRow]:
        """What the software has not taken yet (anything but ``done``), oldest first."""
        rows = self._query(
            f"SELECT {_RECEIVED_COLUMNS} FROM received WHERE message_type = ? AND status != "
            "'done' ORDER BY created, doc_id",
            (message_type,),
        )
        return [ReceivedRow(*row) for row in rows if row[2] in recipients]

    def received_row(self, doc_id: str) -> ReceivedRow | None:
        rows = self._query(f"SELECT {_RECEIVED_COLUMNS} FROM received WHERE doc_id = ?", (doc_id,))
        return ReceivedRow(*rows[0]) if rows else None

    def received_edxml(self, doc_id: str) -> bytes | Path | None:
        """The edXML of a received item: its bytes, or its file for a document that came in
        chunks (to be streamed, not read whole)."""
        rows = self._query("SELECT edxml FROM received WHERE doc_id = ?", (doc_id,))
        if not rows:
            return None
        data = bytes(rows[0][0])
        return data if data else self._document_file(doc_id)

    def _document_file(self, doc_id: str) -> Path:
        return self.documents / f"{doc_id}.edxml"

    @staticmethod
    def _keep_file(source: Path, target: Path) -> None:
        temp = target.with_name(f".{target.name}.tmp")
        temp.unlink(missing_ok=True)
        place_copy(source, temp)
        descriptor = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temp, target)

    def set_received_status(
        self, doc_id: str, status: str, description: str, at: datetime
    ) -> ArrivalOwed | None:
        """Record the software's ``updateStatus``. ``done`` on a document makes status 01
        owed (once): returned so the caller sends it."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT message_type, arrival_state, document_id, recipient, arrival FROM "
                "received WHERE doc_id = ?",
                (doc_id,),
            ).fetchone()
            if row is None:
                return None
            message_type, arrival_state, document_id, recipient, sealed = row
            owes = status == "done" and message_type == "edoc" and arrival_state == "none"
            db.execute(
                "UPDATE received SET status = ?, status_desc = ?, updated = ?, "
                "arrival_state = CASE WHEN ? THEN 'owed' ELSE arrival_state END "
                "WHERE doc_id = ?",
                (status, description, at.isoformat(), owes, doc_id),
            )
            if owes or arrival_state == "owed":
                return ArrivalOwed(doc_id, document_id, recipient, sealed)
            return None

    def arrivals_owed(self) -> list[ArrivalOwed]:
        rows = self._query(
            "SELECT doc_id, document_id, recipient, arrival FROM received "
            "WHERE arrival_state = 'owed' ORDER BY updated"
        )
        return [ArrivalOwed(*row) for row in rows]

    def keep_arrival(self, doc_id: str, sealed: bytes) -> bytes | None:
        """The sealed 01, stored before it is published: a crash resends these bytes.
        The first kept wins: returns the bytes to publish (another caller's, sealed for the
        same 01 at the same time), or None once the 01 was sent."""
        with self._transaction() as db:
            db.execute(
                "UPDATE received SET arrival = ? WHERE doc_id = ? AND arrival_state = 'owed' "
                "AND arrival IS NULL",
                (sealed, doc_id),
            )
            row = db.execute(
                "SELECT arrival FROM received WHERE doc_id = ? AND arrival_state = 'owed'",
                (doc_id,),
            ).fetchone()
            return None if row is None else bytes(row[0])

    def arrival_sent(self, doc_id: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE received SET arrival_state = 'sent', arrival = NULL WHERE doc_id = ?",
                (doc_id,),
            )

    def arrival_state_of(self, document_id: str, recipient: str) -> tuple[str, str] | None:
        """(doc_id, arrival state) of the received document ``document_id`` for
        ``recipient``, if any: the software's own 01 about it is absorbed."""
        rows = self._query(
            "SELECT doc_id, arrival_state FROM received WHERE document_id = ? AND recipient = ?"
            " AND message_type = 'edoc' ORDER BY created LIMIT 1",
            (document_id, recipient),
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def mark_arrival_sent_by_software(self, doc_id: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE received SET arrival_state = 'sent', arrival = NULL "
                "WHERE doc_id = ? AND arrival_state = 'none'",
                (doc_id,),
            )

    def keep_refused(
        self,
        *,
        envelope_id: str,
        recipient: str,
        sender: str,
        document_id: str,
        reason: str,
        message: str,
        at: datetime,
    ) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO refused VALUES (?,?,?,?,?,?,?)",
                (envelope_id, recipient, sender, document_id, reason, message, at.isoformat()),
            )
            return cursor.rowcount == 1

    # ---------------------------------------------------------------------------- sent

    def sent_row(self, doc_id: str) -> SentRow | None:
        rows = self._query(f"SELECT {_SENT_COLUMNS} FROM sent WHERE doc_id = ?", (doc_id,))
        return SentRow(*rows[0]) if rows else None

    def begin_send(
        self,
        row: SentRow,
        recipients: Sequence[str],
    ) -> None:
        """Record a sealed document before it is published (``sent_time`` NULL); replaces
        an earlier attempt of the same DocId that every recipient refused."""
        with self._transaction() as db:
            db.execute("DELETE FROM sent_to WHERE doc_id = ?", (row.doc_id,))
            db.execute(
                f"INSERT OR REPLACE INTO sent ({_SENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    row.doc_id,
                    row.system,
                    row.message_type,
                    row.envelope_id,
                    row.document_id,
                    row.from_code,
                    row.title,
                    row.notation,
                    row.created,
                    None,
                    row.body,
                ),
            )
            db.executemany(
                f"INSERT INTO sent_to ({_SENT_TO_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
                [
                    (row.doc_id, code, "initial", "sealed, not yet confirmed", "", "", None)
                    for code in dict.fromkeys(recipients)
                ],
            )

    def unconfirmed_chunked_sends(self) -> list[tuple[str, str]]:
        """DocId and system of each chunked send (no body kept) the broker never confirmed."""
        rows = self._query(
            "SELECT doc_id, system FROM sent WHERE sent_time IS NULL AND body IS NULL"
        )
        return [(doc_id, system) for doc_id, system in rows]

    def confirm_send(self, doc_id: str, at: datetime) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE sent SET sent_time = ?, body = NULL WHERE doc_id = ?",
                (at.isoformat(), doc_id),
            )
            db.execute(
                "UPDATE sent_to SET send_status = 'sent', send_desc = 'confirmed by the "
                "broker, on its way to the router' WHERE doc_id = ? AND send_status = 'initial'",
                (doc_id,),
            )

    def all_refused(self, doc_id: str) -> bool:
        rows = self._query(
            "SELECT count(*), sum(send_status = 'fail') FROM sent_to WHERE doc_id = ?",
            (doc_id,),
        )
        total, failed = rows[0]
        return bool(total) and total == failed

    def sent_list(
        self, system: str, message_type: str | None, doc_id: str | None
    ) -> list[tuple[SentRow, SentToRow]]:
        sql = (
            f"SELECT {', '.join('s.' + c.strip() for c in _SENT_COLUMNS.split(','))}, "
            f"{', '.join('t.' + c.strip() for c in _SENT_TO_COLUMNS.split(','))} "
            "FROM sent s JOIN sent_to t ON t.doc_id = s.doc_id WHERE s.system = ?"
        )
        params: list[object] = [system]
        if message_type:
            sql += " AND s.message_type = ?"
            params.append(message_type)
        if doc_id:
            sql += " AND s.doc_id = ?"
            params.append(doc_id)
        sql += " ORDER BY s.created, s.doc_id, t.to_code"
        width = len(_SENT_COLUMNS.split(","))
        return [
            (SentRow(*row[:width]), SentToRow(*row[width:])) for row in self._query(sql, params)
        ]

    def apply_send_outcome(
        self,
        event_id: str,
        envelope_id: str,
        recipients: Sequence[str],
        status: str,
        description: str,
    ) -> bool:
        """The router's word on a sent envelope (once per ``event_id``), for ``recipients``
        (empty: all of them). Whether it was new."""
        with self._transaction() as db:
            if not db.execute("INSERT OR IGNORE INTO events_seen VALUES (?)", (event_id,)).rowcount:
                return False
            for (doc_id,) in db.execute(
                "SELECT doc_id FROM sent WHERE envelope_id = ?", (envelope_id,)
            ).fetchall():
                targets = list(recipients) or [
                    code
                    for (code,) in db.execute(
                        "SELECT to_code FROM sent_to WHERE doc_id = ?", (doc_id,)
                    )
                ]
                db.executemany(
                    "UPDATE sent_to SET send_status = ?, send_desc = ? "
                    "WHERE doc_id = ? AND to_code = ?",
                    [(status, description, doc_id, code) for code in targets],
                )
            return True

    def apply_receive_status(
        self,
        event_id: str,
        document_id: str,
        recipient: str,
        code: str,
        description: str,
        at: datetime,
    ) -> bool:
        """A recipient's status about a sent document (once per ``event_id``). A status
        earlier in the 01→06 order never replaces a later one (statuses may overtake)."""
        with self._transaction() as db:
            if not db.execute("INSERT OR IGNORE INTO events_seen VALUES (?)", (event_id,)).rowcount:
                return False
            rows = db.execute(
                "SELECT t.doc_id, t.receive_status FROM sent_to t JOIN sent s ON s.doc_id = "
                "t.doc_id WHERE s.document_id = ? AND s.message_type = 'edoc' AND t.to_code = ?",
                (document_id, recipient),
            ).fetchall()
            for doc_id, current in rows:
                if _rank(current) > _rank(code):
                    continue
                db.execute(
                    "UPDATE sent_to SET receive_status = ?, receive_desc = ?, "
                    "received_time = COALESCE(received_time, ?) WHERE doc_id = ? AND to_code = ?",
                    (code, description, at.isoformat(), doc_id, recipient),
                )
            return True

    # ----------------------------------------------------------------------- proposals

    def propose(
        self, system: str, action: str, agency: str, details: dict[str, object], at: datetime
    ) -> int:
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO proposals (system, action, agency, details, at) VALUES (?,?,?,?,?)",
                (system, action, agency, json.dumps(details, ensure_ascii=False), at.isoformat()),
            )
            return int(cursor.lastrowid or 0)

    def proposals(self) -> list[dict[str, object]]:
        rows = self._query(
            "SELECT id, system, action, agency, details, at FROM proposals ORDER BY id"
        )
        return [
            {
                "id": row[0],
                "system": row[1],
                "action": row[2],
                "agency": row[3],
                "details": json.loads(row[4]),
                "at": row[5],
            }
            for row in rows
        ]
