"""The outgoing side: outbox files claimed, sealed, published, filed in ``sent/`` or
``failed/``.

Per file (every arrow an atomic rename or an fsynced atomic write)::

    outbox/x.edxml → .work/outgoing/x.edxml        claim
                   → seal (refused: failed/x.edxml + failed/x.edxml.error.json; a
                     status 01 too: the adapter sends 01 itself)
                   → .work/outgoing/x.edxml.envelope    BEFORE publishing
                   → publish, broker confirm (broker away: wait and retry, same bytes)
                   → sent/x.edxml.receipt.json, sent/x.edxml, envelope deleted

A crash anywhere resumes from ``.work/outgoing``: a saved envelope is published again as
is (same envelope id, so the router answers the duplicate with its first outcome); a claimed
file without one was never published and is sealed afresh (a large one: unless the client kept
its half-sent chunked envelope, which it then finishes).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from adapters.abc import Adapter, Receipt, Sealed
from adapters.dropfolder.files import (
    atomic_write_bytes,
    atomic_write_json,
    replace_durably,
    unique_destination,
)
from adapters.dropfolder.layout import AgencyFolder
from adapters.dropfolder.options import DropFolderOptions
from adapters.dropfolder.receipts import RECEIPT_SUFFIX, ReceiptIndex
from adapters.dropfolder.records import error_from_exception, error_record, receipt_record
from adapters.dropfolder.settling import Settling, name_kind
from adapters.sealing_thread import SealingThread
from backbone.clock import utc_now
from backbone.edxml import StatusCode, examine
from backbone.envelope import EnvelopeHeader, Kind, read_frame
from backbone.errors import BackboneError, BrokerUnavailableError, EdxmlError, Reason
from backbone.observability import metrics

__all__ = ["ENVELOPE_SUFFIX", "OutboxSender"]

log = structlog.get_logger("adapters.dropfolder")

ENVELOPE_SUFFIX = ".envelope"
UNEXPECTED_ATTEMPTS = 3  # seal attempts after an unexpected (non-Backbone) error
ARRIVED = StatusCode.ARRIVED.value

_EDXML_REASONS = frozenset(
    {
        Reason.EDXML_INVALID,
        Reason.EDXML_NOT_WELL_FORMED,
        Reason.EDXML_UNSAFE,
        Reason.EDXML_TOO_LARGE,
    }
)


class OutboxSender:
    """Sends every agency's outbox through one :class:`Adapter`, ``concurrency`` files at
    once; ``stopping`` (shared with the incoming side) ends it."""

    def __init__(
        self,
        adapter: Adapter,
        folders: Mapping[str, AgencyFolder],
        options: DropFolderOptions,
        stopping: asyncio.Event,
        sealer: SealingThread,
    ) -> None:
        self.adapter = adapter
        self.folders = folders
        self.options = options
        self.stopping = stopping
        self._sealer = sealer
        self._slots = asyncio.Semaphore(options.concurrency)
        # One per folder: each scan forgets what left its own outbox, not another's.
        self._settling = {
            folder.organ_code: Settling(options.settle_seconds, options.monotonic)
            for folder in folders.values()
        }
        self.in_flight: dict[Path, asyncio.Task[None]] = {}
        self.receipts = ReceiptIndex()

    async def resume(self) -> None:
        """Launch what a previous run left in ``.work/outgoing`` (the caller drains)."""
        for folder in self.folders.values():
            for entry in sorted(folder.outgoing.iterdir()):
                if entry.name.endswith(ENVELOPE_SUFFIX):
                    claimed = entry.with_name(entry.name.removesuffix(ENVELOPE_SUFFIX))
                    if not claimed.exists():
                        # The file reached sent/ (its receipt first), only the clean-up of
                        # the envelope was interrupted.
                        entry.unlink()
                    continue
                log.info("adapter.resuming", file=entry.name, sender=folder.organ_code)
                await self._slots.acquire()
                self._launch(folder, entry)

    async def claim_outbox(self) -> int:
        """Claim every finished outbox file a free slot allows; returns how many."""
        claimed = 0
        for folder in self.folders.values():
            for name in self._ready_names(folder):
                if self.stopping.is_set():
                    return claimed
                work = folder.outgoing / name
                envelope = work.with_name(name + ENVELOPE_SUFFIX)
                if work in self.in_flight or work.exists() or envelope.exists():
                    continue  # an earlier file of the same name is still on its way
                # Claim only with a free slot: what waits stays visible in outbox/.
                await self._slots.acquire()
                if self.stopping.is_set():
                    self._slots.release()
                    return claimed
                try:
                    os.replace(folder.outbox / name, work)
                except FileNotFoundError:  # the software took it back
                    self._slots.release()
                    continue
                claimed += 1
                self._launch(folder, work)
        return claimed

    def _ready_names(self, folder: AgencyFolder) -> list[str]:
        try:
            entries = list(os.scandir(folder.outbox))
        except FileNotFoundError:
            return []
        settling = self._settling[folder.organ_code]
        ready: list[tuple[int, str]] = []
        for entry in entries:
            kind = name_kind(entry.name)
            if kind == "in-progress":
                continue
            with contextlib.suppress(FileNotFoundError):
                if not entry.is_file():
                    continue
                if kind == "other":
                    self._report_never_taken(folder, entry.name)
                    continue
                stat = entry.stat()
                if settling.settled(Path(entry.path), stat.st_size, stat.st_mtime_ns):
                    ready.append((stat.st_mtime_ns, entry.name))
        settling.keep_only(Path(entry.path) for entry in entries)
        # Oldest first, so a burst goes out in the order the software wrote it.
        return [name for _, name in sorted(ready)]

    def _report_never_taken(self, folder: AgencyFolder, name: str) -> None:
        """Say once (a log line and ``failed/<name>.error.json``; the file stays) that a
        file in ``outbox/`` will never be sent because of its name."""
        note = folder.failed / f"{name}.error.json"
        if note.exists():
            return
        record = error_record(
            file=name,
            reason=Reason.OUTBOX_NAME_NOT_TAKEN.value,
            message=f"outbox/{name} will not be sent: only names ending in .edxml (any case) "
            "are taken; names starting with a dot or ending in .tmp or .part are files still "
            f"being written. Rename it to end in .edxml to send it; it stays in outbox/",
        )
        atomic_write_json(note, record, scratch=folder.scratch)
        log.warning(
            "adapter.outbox_name_not_taken",
            file=name,
            sender=folder.organ_code,
            outcome=Reason.OUTBOX_NAME_NOT_TAKEN.value,
        )

    def _launch(self, folder: AgencyFolder, work: Path) -> None:
        """Send one claimed file in its own task; the caller holds a slot for it."""

        async def guarded() -> None:
            try:
                await self._send_file(folder, work)
            except Exception:
                # The file stays in .work and is resumed at the next start.
                log.exception("adapter.outgoing_crashed", file=work.name, outcome="error")
            finally:
                self._slots.release()
                self.in_flight.pop(work, None)

        self.in_flight[work] = asyncio.create_task(guarded(), name=f"send {work.name}")

    async def _send_file(self, folder: AgencyFolder, work: Path) -> None:
        envelope = work.with_name(work.name + ENVELOPE_SUFFIX)
        sealed = await asyncio.to_thread(self._saved_envelope, envelope)
        if sealed is None and self.adapter.travels_chunked(
            (await asyncio.to_thread(work.stat)).st_size
        ):
            await self._send_chunked(folder, work)
            return
        if sealed is None:
            sealed = await self._seal(folder, work)
            if sealed is None:
                return
            await asyncio.to_thread(
                atomic_write_bytes, envelope, sealed.body, scratch=folder.scratch
            )
        receipt = await self._publish(folder, work, sealed)
        if receipt is None:
            return
        await asyncio.to_thread(self._complete, folder, work, envelope, receipt)

    def _saved_envelope(self, envelope: Path) -> Sealed | None:
        try:
            body = envelope.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return Sealed(read_frame(body).header, body)
        except BackboneError:
            # Written atomically, so this is damage from outside, and it was therefore never
            # published intact: sealing again is safe.
            log.warning("adapter.envelope_unreadable", file=envelope.name, outcome="resealed")
            envelope.unlink()
            return None

    async def _seal(self, folder: AgencyFolder, work: Path) -> Sealed | None:
        data = await asyncio.to_thread(work.read_bytes)
        delay = self.options.retry_initial
        for attempt in range(1, UNEXPECTED_ATTEMPTS + 1):
            try:
                sealed = await self._sealer.run(self.adapter.seal, data)
            except BackboneError as error:
                record = error_from_exception(work.name, error)
                if _cut_short(error, data):
                    record["message"] += (
                        "; the problem is at the very end of the file: if the software was "
                        "still writing it, write it as x.edxml.tmp and rename it when complete, "
                        f"or let the adapter wait longer than {self.options.settle_seconds} s "
                        "for a file to stop changing (--settle-seconds)"
                    )
                if error.reason in _EDXML_REASONS:
                    # seal stops at the first problem; the clerk wants the whole list.
                    examination = await self._sealer.run(examine, data)
                    if examination.issues:
                        record["issues"] = [issue.as_dict() for issue in examination.issues]
                await asyncio.to_thread(self._fail, folder, work, record)
                return None
            except Exception as error:
                # Not a verdict on the document (a bug, a passing I/O error): try again a
                # few times before giving the file back through failed/.
                log.exception("adapter.seal_crashed", file=work.name, attempt=attempt)
                if attempt == UNEXPECTED_ATTEMPTS:
                    record = error_record(
                        file=work.name,
                        reason="adapter_error",
                        message=f"the adapter could not seal it: {type(error).__name__}: "
                        f"{error}; drop it again, and tell the operator if this repeats",
                    )
                    await asyncio.to_thread(self._fail, folder, work, record)
                    return None
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.options.retry_max)
            else:
                break
        refusal = _not_for_this_folder(folder, sealed.header)
        if refusal is not None:
            await asyncio.to_thread(
                self._fail, folder, work, error_from_exception(work.name, refusal)
            )
            return None
        return sealed

    async def _send_chunked(self, folder: AgencyFolder, work: Path) -> None:
        """A file larger than one chunk: read from disk and sent as a chunked envelope
        (docs/large-documents.md), the folder's own checks made on it before anything is
        published. No envelope is kept here: the client keeps the send in its staging
        directory, keyed by the claimed file, so a broker failure's retry and a restart's
        resume finish the same envelope (docs/large-documents.md)."""

        async def check(header: EnvelopeHeader, _message: object) -> None:
            refusal = _not_for_this_folder(folder, header)
            if refusal is not None:
                raise refusal

        receipt = await self._until_confirmed(
            folder,
            work,
            lambda: self.adapter.send_file(work, before_publish=check),
            {"file": work.name, "form": "chunked"},
        )
        if receipt is not None:
            envelope = work.with_name(work.name + ENVELOPE_SUFFIX)
            await asyncio.to_thread(self._complete, folder, work, envelope, receipt)

    async def _publish(self, folder: AgencyFolder, work: Path, sealed: Sealed) -> Receipt | None:
        header = sealed.header
        fields = {
            "envelope_id": header.envelope_id,
            "document_id": header.document_id,
            "sender": header.sender,
            "file": work.name,
        }
        return await self._until_confirmed(
            folder,
            work,
            lambda: asyncio.wait_for(self.adapter.publish(sealed), self.options.publish_timeout),
            fields,
        )

    async def _until_confirmed(
        self,
        folder: AgencyFolder,
        work: Path,
        attempt: Callable[[], Awaitable[Receipt]],
        fields: dict[str, str],
    ) -> Receipt | None:
        """``attempt`` until the broker confirms it; a refusal files ``work`` in failed/
        (None), and so does nothing while the broker is away: retried, or left for the
        next start when stopping (None)."""
        delay = self.options.retry_initial
        while True:
            try:
                receipt = await attempt()
            except BackboneError as error:
                if not isinstance(error, BrokerUnavailableError):
                    log.warning("adapter.refused", **fields, outcome=error.reason.value)
                    await asyncio.to_thread(
                        self._fail, folder, work, error_from_exception(work.name, error)
                    )
                    return None
                problem: str = error.message
            except Exception as error:  # connection lost, channel closed, timeout
                problem = f"{type(error).__name__}: {error}"
            else:
                log.info(
                    "adapter.sent",
                    **{**fields, "envelope_id": receipt.envelope_id},
                    outcome="sent",
                )
                return receipt
            log.warning(
                "adapter.waiting_for_broker",
                **fields,
                outcome="retry",
                retry_in=delay,
                problem=problem,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            if self.stopping.is_set():
                log.info("adapter.left_for_restart", **fields, outcome="pending")
                return None
            delay = min(delay * 2, self.options.retry_max)

    def _complete(self, folder: AgencyFolder, work: Path, envelope: Path, receipt: Receipt) -> None:
        target = unique_destination(folder.sent, work.name, tag=receipt.envelope_id[:8])
        # Receipt first: when the document shows up in sent/, its receipt is already there.
        record = receipt_record(receipt, file=target.name)
        receipt_file = target.with_name(target.name + RECEIPT_SUFFIX)
        atomic_write_json(receipt_file, record, scratch=folder.scratch)
        self.receipts.note(receipt_file, record)
        replace_durably(work, target)
        envelope.unlink(missing_ok=True)

    def _fail(self, folder: AgencyFolder, work: Path, record: dict[str, Any]) -> None:
        # The tag is a UTC instant: the machine's own zone never shows in a file name.
        tag = utc_now().strftime("%Y%m%dT%H%M%SZ")
        target = unique_destination(folder.failed, work.name, tag=tag)
        record["file"] = target.name
        atomic_write_json(
            target.with_name(target.name + ".error.json"), record, scratch=folder.scratch
        )
        replace_durably(work, target)
        work.with_name(work.name + ENVELOPE_SUFFIX).unlink(missing_ok=True)
        # A file given back through failed/ was not sent: the send-failure count (and its
        # alert) must see it, not only a broker outage.
        metrics.ADAPTER_SEND_FAILURES.labels(record["reason"]).inc()
        log.warning(
            "adapter.failed",
            file=target.name,
            sender=folder.organ_code,
            outcome=record["reason"],
            issues=len(record["issues"]),
        )


def _not_for_this_folder(folder: AgencyFolder, header: EnvelopeHeader) -> BackboneError | None:
    """Why a sealed envelope must not go out from ``folder``, or None."""
    if header.sender != folder.organ_code:
        # One agency's folder must not speak for another, even inside one hub.
        return BackboneError(
            f"the document's sender (From/OrganId) is {header.sender}, but this folder "
            f"sends for {folder.organ_code}",
            reason=Reason.POLICY_DENIED,
        )
    if header.kind == Kind.STATUS and header.status_code == ARRIVED:
        # The adapter owns 01: it sent one when it wrote the document into inbox/, and
        # a second would only come back refused as a duplicate (docs/adapter.md).
        return BackboneError(
            f"status 01 (arrived) about {header.document_id} was not sent: the adapter "
            "sends 01 itself for every document it writes into inbox/",
            reason=Reason.ARRIVAL_SENT_BY_ADAPTER,
        )
    return None


def _cut_short(error: BackboneError, data: bytes) -> bool:
    """Not well-formed at the file's last line: what a file taken half-written looks like."""
    return (
        isinstance(error, EdxmlError)
        and error.reason is Reason.EDXML_NOT_WELL_FORMED
        and error.line is not None
        and error.line >= data.rstrip().count(b"\n") + 1
    )
