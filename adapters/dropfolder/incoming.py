"""The incoming side: received documents, statuses and refusals written into the agency's
folder, then acknowledged, then (documents) answered with status 01.

Per item: written to ``.work/incoming`` and renamed into ``inbox/`` or ``status/`` as the
last step, recorded in ``.work/received``, and only then acknowledged to the broker (by
asking the iterator for the next item) and, for documents, answered with status 01. A
redelivery (crash before the ack) finds its record and is not written twice.

Refused incoming content (see :mod:`adapters.receiving`): ``rejected/<envelope id>/`` is
assembled in ``.work/incoming`` and renamed into place before the sender is told (status
02) and the broker acknowledged; a redelivery finds it there and only answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from pathlib import Path
from typing import Any

import structlog

from adapters.abc import Adapter, Received, Refused
from adapters.dropfolder.files import (
    atomic_write_bytes,
    atomic_write_json,
    replace_durably,
    safe_file_name,
)
from adapters.dropfolder.layout import AgencyFolder
from adapters.dropfolder.options import DropFolderOptions
from adapters.dropfolder.records import document_metadata, status_file_stem, status_metadata
from adapters.file_copies import place_copy
from adapters.supervision import supervise
from backbone.edxml import EdxmlDocument, EdxmlStatus, StatusCode
from backbone.envelope import Kind
from backbone.errors import BackboneError, BrokerUnavailableError

__all__ = ["InboxReceiver"]

log = structlog.get_logger("adapters.dropfolder")

RESERVED_NAMES = frozenset({"document.edxml", "metadata.json"})


class InboxReceiver:
    """Receives for every agency folder through one :class:`Adapter`; ``stopping`` (shared
    with the outgoing side) ends it."""

    def __init__(
        self,
        adapter: Adapter,
        folders: Mapping[str, AgencyFolder],
        options: DropFolderOptions,
        stopping: asyncio.Event,
    ) -> None:
        self.adapter = adapter
        self.folders = folders
        self.options = options
        self.stopping = stopping
        self.background: set[asyncio.Task[None]] = set()  # status 01 being sent
        self._arrivals_resumed = False

    async def receive_supervised(self) -> None:
        """Keep receiving through failures (a refused write, a lost channel): what was not
        stored was not acknowledged, so the broker hands it out again."""
        await supervise(
            self.receive_forever,
            failure="adapter.incoming_failed",
            stopping=self.stopping,
            retry_initial=self.options.retry_initial,
            retry_max=self.options.retry_max,
        )

    async def receive_forever(self) -> None:
        """Store every received item; ack it (ask for the next) only once it is on disk,
        then send status 01 for documents."""
        # What the adapter refuses to deliver is kept in rejected/ (module docstring).
        self.adapter.set_refusal_keeper(self.keep_refused)
        if not self._arrivals_resumed:  # once per run, not again after a retried failure
            self._arrivals_resumed = True
            await self._resend_missing_arrivals()
        iterator: AsyncIterator[Received] = aiter(self.adapter.received())
        owed: Received | None = None
        try:
            while True:
                # Asking for the next item acknowledges the previous one to the broker; the
                # 01 for it is scheduled after that request, never before the disk write.
                following = asyncio.ensure_future(anext(iterator))
                if owed is not None:
                    self._spawn(self._acknowledge_arrival(owed))
                item = await following
                # Shielded: a shutdown must not interrupt a half-done write.
                owed = item if await asyncio.shield(self._store_until_written(item)) else None
        except StopAsyncIteration:
            return
        finally:
            closer = getattr(iterator, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()

    async def _store_until_written(self, item: Received) -> bool:
        """:meth:`store`, retried while the disk refuses the write (full, read-only, the
        folder gone). The message stays unacknowledged, held here rather than handed back:
        every hand-back counts toward the inbox's delivery limit, after which the broker
        would dead-letter the document. Only a shutdown gives it back."""
        delay = self.options.retry_initial
        while True:
            try:
                return await self.store(item)
            except OSError as error:
                if self.stopping.is_set():
                    raise
                log.warning(
                    "adapter.inbox_unwritable",
                    envelope_id=item.envelope_id,
                    document_id=item.header.document_id,
                    recipient=item.recipient,
                    problem=f"{type(error).__name__}: {error}",
                    retry_in=delay,
                    outcome="retry",
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            delay = min(delay * 2, self.options.write_retry_max)

    async def store(self, item: Received) -> bool:
        """Write ``item`` into its agency's folder unless it is a redelivery. Returns whether
        status 01 is still owed for it."""
        folder = self.folders.get(item.recipient)
        if folder is None:
            # The adapter only decrypts for agencies it serves; this is a configuration bug.
            raise BackboneError(f"received an item for {item.recipient}, which has no folder here")
        marker = folder.journal / item.envelope_id
        fields = {
            "envelope_id": item.envelope_id,
            "document_id": item.header.document_id,
            "sender": item.header.sender,
            "recipient": item.recipient,
        }
        message = item.message
        if isinstance(message, EdxmlDocument):
            if marker.exists() or (folder.inbox / item.envelope_id).exists():
                log.info("adapter.redelivered", **fields, outcome="already_stored")
                return not self._arrival_recorded(marker)
            await asyncio.to_thread(self._write_document, folder, item, message)
            log.info("adapter.received", **fields, kind="document", outcome="stored")
            return True
        stem = status_file_stem(item, message)
        if marker.exists() or (folder.status / f"{stem}.edxml").exists():
            log.info("adapter.redelivered", **fields, outcome="already_stored")
            return False
        await asyncio.to_thread(self._write_status, folder, item, message, stem)
        log.info(
            "adapter.received",
            **fields,
            kind="status",
            status=message.status_code.value,
            outcome="stored",
        )
        return False

    async def keep_refused(self, refusal: Refused) -> None:
        """Keep refused content in its agency's ``rejected/`` (once per envelope)."""
        folder = self.folders.get(refusal.recipient)
        if folder is None:
            raise BackboneError(
                f"refused an item for {refusal.recipient}, which has no folder here"
            )
        written = await asyncio.to_thread(self._write_refused, folder, refusal)
        log.warning(
            "adapter.rejected",
            envelope_id=refusal.header.envelope_id,
            document_id=refusal.header.document_id,
            sender=refusal.header.sender,
            recipient=refusal.recipient,
            outcome=refusal.reason.value if written else "already_kept",
        )

    def _write_refused(self, folder: AgencyFolder, refusal: Refused) -> bool:
        header = refusal.header
        target = folder.rejected / header.envelope_id
        if target.exists():
            return False
        stage = folder.incoming / f"{header.envelope_id}.rejected"
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir()
        (stage / "envelope.vdx").write_bytes(refusal.body)
        if refusal.edxml is not None:
            (stage / "decrypted.edxml").write_bytes(refusal.edxml)
        record = {
            "envelope_id": header.envelope_id,
            "kind": header.kind.value,
            "sender": header.sender,
            "recipients": list(header.recipients),
            "recipient": refusal.recipient,
            "document_id": header.document_id,
            "sealed_at": header.created.isoformat(),
            "reason": refusal.reason.value,
            "message": refusal.message,
            "refused_at": refusal.refused_at.isoformat(),
            "sender_told": "status 02" if header.kind == Kind.DOCUMENT else None,
        }
        (stage / "error.json").write_text(
            json.dumps(record, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
        )
        replace_durably(stage, target)
        return True

    def _write_document(
        self, folder: AgencyFolder, item: Received, document: EdxmlDocument
    ) -> None:
        stage = folder.incoming / item.envelope_id
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir()
        if item.file is not None:  # came in chunks: linked (or copied) from the adapter's file
            place_copy(item.file, stage / "document.edxml")
        else:
            (stage / "document.edxml").write_bytes(item.edxml)
        names: set[str] = set(RESERVED_NAMES)
        described: list[dict[str, Any]] = []
        for index, attachment in enumerate(document.attachments, start=1):
            name = _free_name(
                safe_file_name(attachment.attachment_name, fallback=f"attachment-{index}"), names
            )
            names.add(name.casefold())
            (stage / name).write_bytes(attachment.content)
            described.append(
                {
                    "file": name,
                    "attachment_name": attachment.attachment_name,
                    "content_id": attachment.content_id,
                    "content_type": attachment.content_type,
                    "description": attachment.description,
                    "size": len(attachment.content),
                }
            )
        metadata = document_metadata(item, document, described)
        (stage / "metadata.json").write_text(
            json.dumps(metadata, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
        )
        # The rename is the commit: the software sees the whole entry or none of it.
        replace_durably(stage, folder.inbox / item.envelope_id)
        self._record(folder, item, arrival_acknowledged=False)

    def _write_status(
        self, folder: AgencyFolder, item: Received, status: EdxmlStatus, stem: str
    ) -> None:
        atomic_write_json(
            folder.status / f"{stem}.json", status_metadata(item, status), scratch=folder.scratch
        )
        # The .edxml is what software watches, so it lands last.
        atomic_write_bytes(
            folder.status / f"{stem}.edxml", item.read_edxml(), scratch=folder.scratch
        )
        self._record(folder, item, arrival_acknowledged=True)

    def _record(self, folder: AgencyFolder, item: Received, *, arrival_acknowledged: bool) -> None:
        """Remember the envelope even after the software moves its files away."""
        atomic_write_json(
            folder.journal / item.envelope_id,
            {
                "document_id": item.header.document_id,
                "kind": item.header.kind.value,
                "arrival_acknowledged": arrival_acknowledged,
            },
            scratch=folder.scratch,
        )

    @staticmethod
    def _arrival_recorded(marker: Path) -> bool:
        try:
            return bool(json.loads(marker.read_text()).get("arrival_acknowledged"))
        except (FileNotFoundError, ValueError):
            return False

    async def _acknowledge_arrival(self, item: Received) -> None:
        await self._send_arrival(item.recipient, item.envelope_id, item.header.document_id, item)

    async def _send_arrival(
        self, recipient: str, envelope_id: str, document_id: str, item: Received | None
    ) -> None:
        """Status 01, retried while the broker is away; recorded once sent, or refused for
        good (never owed again)."""
        folder = self.folders[recipient]
        fields = {"envelope_id": envelope_id, "document_id": document_id, "sender": recipient}
        delay = self.options.retry_initial
        refused: str | None = None  # why this 01 can never be sent
        while True:
            try:
                if item is not None:
                    await self.adapter.acknowledge_arrival(item)
                else:
                    await self.adapter.send_status(
                        document_id, StatusCode.ARRIVED, sender=recipient
                    )
                break
            except BackboneError as error:
                if not isinstance(error, BrokerUnavailableError):
                    refused = error.reason.value
                    log.warning("adapter.arrival_refused", **fields, outcome=refused)
                    break
            except ValueError as error:
                # A status that cannot be built (pydantic's ValidationError is a ValueError)
                # never will be: retried, across restarts too, it would never end.
                refused = "invalid_status"
                log.warning(
                    "adapter.arrival_refused", **fields, outcome=refused, problem=str(error)
                )
                break
            except Exception as error:
                log.warning(
                    "adapter.waiting_for_broker",
                    **fields,
                    outcome="retry",
                    problem=f"{type(error).__name__}: {error}",
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            if self.stopping.is_set():
                return  # still recorded as owed: sent at the next start
            delay = min(delay * 2, self.options.retry_max)
        # Recorded as done either way: a refused 01 is not owed at the next start.
        marker = folder.journal / envelope_id
        record: dict[str, Any] = {
            "document_id": document_id,
            "kind": "document",
            "arrival_acknowledged": True,
        }
        if refused is not None:
            record["arrival_refused"] = refused
        await asyncio.to_thread(atomic_write_json, marker, record, scratch=folder.scratch)
        if refused is None:
            log.info("adapter.arrival_acknowledged", **fields, outcome="status_01")

    async def _resend_missing_arrivals(self) -> None:
        """A crash between the inbox write and status 01 leaves 01 owed: send it now."""
        for folder in self.folders.values():
            for marker in folder.journal.iterdir():
                try:
                    record = json.loads(marker.read_text())
                except (OSError, ValueError):
                    continue
                if record.get("kind") == "document" and not record.get("arrival_acknowledged"):
                    self._spawn(
                        self._send_arrival(
                            folder.organ_code, marker.name, str(record["document_id"]), None
                        )
                    )

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("adapter.background_failed", outcome="error")

        task = asyncio.create_task(run())
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def forget_old_receipts(self, folder: AgencyFolder) -> None:
        horizon = time.time() - self.options.journal_days * 86400
        for marker in folder.journal.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if marker.stat().st_mtime < horizon:
                    marker.unlink()


def _free_name(name: str, taken: set[str]) -> str:
    """``name``, or ``stem (2).ext`` … when two attachments (or a reserved file) share it.
    Compared case-insensitively: agency shares are often case-insensitive."""
    if name.casefold() not in taken:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    for n in range(2, 10_000):
        candidate = f"{stem} ({n}).{ext}" if ext else f"{stem} ({n})"
        if candidate.casefold() not in taken:
            return candidate
    raise BackboneError(f"too many attachments named {name}")
