"""What became of sent files: the router's events (:meth:`Adapter.events`) written beside
the documents they are about, before each event is acknowledged.

The sent file is found by the event's envelope id in the receipts (``sent/*.receipt.json``,
or ``failed/`` once moved); an ``overdue`` event, which carries only a DocumentId, by that.

- ``rejected``: the router refused it, so it is not shown as sent. ``failed/x.edxml`` gets
  an ``.error.json`` (the router's reason code, its message, what to do from
  docs/reasons.md, ``refused_by: router``), then the receipt moves to
  ``failed/x.edxml.receipt.json``, then the document itself: the same place and record as a
  file the adapter refused before sending. A refusal of something no file was sent for (a
  status the adapter sent itself) is written as ``failed/<envelope id>.error.json``.
- ``routed``, ``duplicate``, ``unroutable``, ``dead_lettered``, ``overdue``: added to the
  receipt's ``router_events`` (and ``router_outcome``, the latest).
- ``status``: nothing; the status itself is in ``status/``.

Every step is an atomic write or rename and is skipped when already done, so a redelivered
event (after a crash before its acknowledgement) finishes the work or changes nothing. An
event can overtake the file it is about (the router answers while the adapter is still
moving it to ``sent/``): the files in flight are waited for, then looked up again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from adapters.abc import Adapter, Event, EventType
from adapters.dropfolder.files import atomic_write_json, replace_durably, unique_destination
from adapters.dropfolder.layout import AgencyFolder
from adapters.dropfolder.options import DropFolderOptions
from adapters.dropfolder.outgoing import OutboxSender
from adapters.dropfolder.receipts import RECEIPT_SUFFIX, read_json
from adapters.dropfolder.records import error_record, router_event_record
from adapters.supervision import supervise

__all__ = ["SentOutcomes"]

log = structlog.get_logger("adapters.dropfolder")

ERROR_SUFFIX = ".error.json"


@dataclass(frozen=True, slots=True)
class _Found:
    """A receipt and the document it describes (``<name>`` beside ``<name>.receipt.json``)."""

    receipt: Path
    record: dict[str, Any]

    @property
    def document(self) -> Path:
        return self.receipt.with_name(self.receipt.name.removesuffix(RECEIPT_SUFFIX))


class SentOutcomes:
    """Records every event about what the agencies' folders sent; ``stopping`` (shared
    with the other sides) ends it."""

    def __init__(
        self,
        adapter: Adapter,
        folders: Mapping[str, AgencyFolder],
        options: DropFolderOptions,
        stopping: asyncio.Event,
        outgoing: OutboxSender,
    ) -> None:
        self.adapter = adapter
        self.folders = folders
        self.options = options
        self.stopping = stopping
        self._outgoing = outgoing
        self._receipts = outgoing.receipts  # the sender notes each receipt it writes

    async def receive_supervised(self) -> None:
        """Keep recording through failures: what was not recorded was not acknowledged,
        so the broker hands it out again."""
        await supervise(
            self.receive_forever,
            failure="adapter.events_failed",
            stopping=self.stopping,
            retry_initial=self.options.retry_initial,
            retry_max=self.options.retry_max,
        )

    async def receive_forever(self) -> None:
        """Record each event; asking for the next one acknowledges it."""
        iterator: AsyncIterator[Event] = aiter(self.adapter.events())
        try:
            async for event in iterator:
                # Shielded: a shutdown must not interrupt a half-done move.
                await asyncio.shield(self.record(event))
        finally:
            closer = getattr(iterator, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()

    async def record(self, event: Event) -> Path | None:
        """Write ``event`` beside the file it is about; the record written or updated (None:
        nothing to write, e.g. a ``status`` event or a routed status the adapter sent)."""
        folder = self.folders.get(event.party)
        if folder is None or event.type is EventType.STATUS:
            return None
        found = await asyncio.to_thread(self._find, folder, event)
        if found is None and event.envelope_id is not None and self._outgoing.in_flight:
            # The router may answer before the file reached sent/: let those finish.
            await asyncio.gather(*self._outgoing.in_flight.values(), return_exceptions=True)
            found = await asyncio.to_thread(self._find, folder, event)
        if event.type is EventType.REJECTED:
            return await asyncio.to_thread(self._refused, folder, event, found)
        if found is None:
            log.info(
                "adapter.event_without_file",
                envelope_id=event.envelope_id,
                document_id=event.document_id,
                sender=event.party,
                event_type=event.type.value,
                outcome="logged",
            )
            return None
        await asyncio.to_thread(self._note, folder, event, found)
        return found.receipt

    # ------------------------------------------------------------------------- lookups

    def _find(self, folder: AgencyFolder, event: Event) -> _Found | None:
        """The receipt ``event`` is about: by envelope id, or (overdue) the latest sent one
        of its DocumentId."""
        directories = (folder.sent, folder.failed)
        if event.envelope_id is not None:
            found = self._receipts.by_envelope(directories, event.envelope_id)
            return None if found is None else _Found(*found)
        if event.document_id is None:
            return None
        matches = [
            _Found(receipt, record)
            for receipt in self._receipts.by_document(directories, event.document_id)
            if (record := read_json(receipt)) is not None
        ]
        return max(matches, key=lambda f: str(f.record.get("sent_at", "")), default=None)

    # ------------------------------------------------------------------------- writing

    def _refused(self, folder: AgencyFolder, event: Event, found: _Found | None) -> Path:
        """``rejected``: error record, receipt, then the document into ``failed/``."""
        reason = event.reason.value if event.reason is not None else "unspecified"
        message = event.message or "refused by the router"
        if found is None:
            # No file of this folder: a status the adapter sent itself (01, 02).
            target = folder.failed / f"{event.envelope_id or event.event_id}"
            error = target.with_name(target.name + ERROR_SUFFIX)
            if not error.exists():
                record = _router_error(target.name, reason, message, event)
                record["file"] = None
                atomic_write_json(error, record, scratch=folder.scratch)
            self._log_refused(folder, event, reason, None)
            return error
        if found.receipt.parent == folder.failed:
            target = found.document  # moved already: finish what a crash interrupted
        else:
            target = unique_destination(
                folder.failed, found.document.name, tag=(event.envelope_id or "")[:8]
            )
            error = target.with_name(target.name + ERROR_SUFFIX)
            atomic_write_json(
                error, _router_error(target.name, reason, message, event), scratch=folder.scratch
            )
            receipt = _with_event(found.record, event)
            atomic_write_json(
                target.with_name(target.name + RECEIPT_SUFFIX), receipt, scratch=folder.scratch
            )
            found.receipt.unlink(missing_ok=True)
        sent = folder.sent / str(found.record.get("file") or found.document.name)
        if not target.exists() and sent.exists():
            replace_durably(sent, target)
        self._log_refused(folder, event, reason, target.name)
        return target.with_name(target.name + ERROR_SUFFIX)

    def _note(self, folder: AgencyFolder, event: Event, found: _Found) -> None:
        """Any other event: into the receipt's history, once."""
        updated = _with_event(found.record, event)
        if updated != found.record:
            atomic_write_json(found.receipt, updated, scratch=folder.scratch)
        log.info(
            "adapter.event_recorded",
            envelope_id=event.envelope_id,
            document_id=event.document_id,
            sender=event.party,
            file=found.document.name,
            outcome=event.type.value,
        )

    @staticmethod
    def _log_refused(folder: AgencyFolder, event: Event, reason: str, file: str | None) -> None:
        log.warning(
            "adapter.refused_by_router",
            envelope_id=event.envelope_id,
            document_id=event.document_id,
            sender=folder.organ_code,
            file=file,
            reason=reason,
            outcome="failed",
        )


def _router_error(file: str, reason: str, message: str, event: Event) -> dict[str, Any]:
    return {
        **error_record(file=file, reason=reason, message=message),
        "refused_by": "router",
        "envelope_id": event.envelope_id,
        "document_id": event.document_id,
        "event_id": event.event_id,
        "failed_at": event.at.isoformat(),
    }


def _with_event(receipt: dict[str, Any], event: Event) -> dict[str, Any]:
    """``receipt`` with ``event`` in its history (unchanged when it is there already)."""
    history = list(receipt.get("router_events", []))
    if any(entry.get("event_id") == event.event_id for entry in history):
        return receipt
    history.append(router_event_record(event))
    return {**receipt, "router_events": history, "router_outcome": event.type.value}
