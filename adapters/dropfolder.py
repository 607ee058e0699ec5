"""The drop folder: document software exchanges files, the adapter does the rest.

Outgoing, per file (every arrow an atomic rename or an fsynced atomic write)::

    outbox/x.edxml → .work/outgoing/x.edxml        claim
                   → seal (refused: failed/x.edxml + failed/x.edxml.error.json)
                   → .work/outgoing/x.edxml.envelope    BEFORE publishing
                   → publish, broker confirm (broker away: wait and retry, same bytes)
                   → sent/x.edxml.receipt.json, sent/x.edxml, envelope deleted

A crash anywhere resumes from ``.work/outgoing``: a saved envelope is published again as
is (same envelope id, so the router answers the duplicate with its first outcome); a claimed
file without one was never published and is sealed afresh.

Incoming, per item: written to ``.work/incoming`` and renamed into ``inbox/`` or
``status/`` as the last step, recorded in ``.work/received``, and only then acknowledged to
the broker (by asking the iterator for the next item) and, for documents, answered with
status 01. A redelivery (crash before the ack) finds its record and is not written twice.

Refused incoming content (see :mod:`adapters.client`): ``rejected/<envelope id>/`` is
assembled in ``.work/incoming`` and renamed into place before the sender is told (status
02) and the broker acknowledged; a redelivery finds it there and only answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import structlog

from adapters.abc import Adapter, Receipt, Received, RefusalKeeper, Refused, Sealed
from adapters.dropfolder_files import (
    atomic_write_bytes,
    atomic_write_json,
    is_outgoing_name,
    replace_durably,
    safe_file_name,
    unique_destination,
)
from adapters.dropfolder_layout import AgencyFolder
from adapters.dropfolder_records import (
    document_metadata,
    error_from_exception,
    error_record,
    receipt_record,
    status_file_stem,
    status_metadata,
)
from backbone.clock import utc_now
from backbone.edxml import EdxmlDocument, EdxmlStatus, StatusCode, examine
from backbone.envelope import Kind, read_header
from backbone.errors import BackboneError, BrokerUnavailableError, ConfigurationError, Reason

__all__ = ["AgencyFolder", "DropFolder", "DropFolderOptions"]

log = structlog.get_logger(__name__)

ENVELOPE_SUFFIX = ".envelope"
UNEXPECTED_ATTEMPTS = 3  # seal attempts after an unexpected (non-Backbone) error
_T = TypeVar("_T")
# A tiny edXML whose examination loads the XSDs on the sealing thread at start.
_WARM_UP = b'<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"/>'
RESERVED_NAMES = frozenset({"document.edxml", "metadata.json"})


@runtime_checkable
class _AcknowledgesArrival(Protocol):
    """``AdapterClient`` sends status 01 itself; a bare :class:`Adapter` gets send_status."""

    def acknowledge_arrival(self, received: Received) -> Awaitable[object]: ...


@runtime_checkable
class _KeepsRefusals(Protocol):
    """``AdapterClient`` hands refused content to a keeper; the drop folder is one."""

    keep_refused: RefusalKeeper | None


@dataclass(frozen=True, slots=True)
class DropFolderOptions:
    poll_interval: float = 0.5  # seconds between outbox scans
    concurrency: int = 8  # outbox files sealed/published at once, all agencies together
    retry_initial: float = 0.5  # first wait after a failed publish; doubles up to retry_max
    retry_max: float = 30.0
    write_retry_max: float = 5.0  # longest wait between attempts to write a received item
    publish_timeout: float = 120.0  # a publish not confirmed by then is retried (same bytes)
    journal_days: float = 30.0  # how long a received envelope is remembered


class DropFolder:
    """Serves one folder per agency (hub mode: several) through one :class:`Adapter`."""

    def __init__(
        self,
        adapter: Adapter,
        folders: Mapping[str, Path],
        options: DropFolderOptions | None = None,
    ) -> None:
        if not folders:
            raise ConfigurationError("a drop folder needs at least one agency folder")
        self.adapter = adapter
        self.options = options or DropFolderOptions()
        self.folders = {code: AgencyFolder(code, Path(root)) for code, root in folders.items()}
        self.stopping = asyncio.Event()
        self._slots = asyncio.Semaphore(self.options.concurrency)
        self._in_flight: dict[Path, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._lock_fds: list[int] = []  # held for the life of the process
        self._arrivals_resumed = False
        # Sealing (lxml, XML-DSig) runs on ONE thread of its own: off the event loop, but
        # never two at once, since lxml parses its XSDs per thread and parallel first
        # parses fail; this thread parses them once, at start.
        self._sealer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dropfolder-seal")
        if isinstance(adapter, _KeepsRefusals):
            adapter.keep_refused = self.keep_refused

    # ----------------------------------------------------------------- the whole service

    async def run(self) -> None:
        """Prepare, resume, then serve outbox and inbox until :meth:`stop`; in-flight files
        are finished (or left resumable in ``.work``) before it returns."""
        self.prepare()
        incoming = asyncio.create_task(self._receive_supervised(), name="dropfolder-incoming")
        try:
            await self.resume()
            while not self.stopping.is_set():
                await self.claim_outbox()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), self.options.poll_interval)
        finally:
            self.stopping.set()
            await self.drain()
            incoming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await incoming
            self._sealer.shutdown(wait=False)

    def _lock(self, folder: AgencyFolder) -> None:
        """Refuse to serve a folder another adapter process serves: two would discard each
        other's work in progress. A POSIX lock, so it dies with the process (no stale
        lock after a SIGKILL) and is held per process, not per instance."""
        folder.work.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder.work / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ConfigurationError(
                f"another adapter process is already serving {folder.root}"
            ) from None
        self._lock_fds.append(fd)

    def stop(self) -> None:
        """Take no new outbox file; let what is in flight finish."""
        self.stopping.set()

    def prepare(self) -> None:
        for folder in self.folders.values():
            self._lock(folder)  # before prepare() discards anything in .work
            folder.prepare()
            self._forget_old_receipts(folder)
        self._sealer.submit(examine, _WARM_UP).result()

    async def _on_sealer(self, function: Callable[[bytes], _T], data: bytes) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._sealer, function, data)

    async def drain(self) -> None:
        """Wait for every outbox file in flight and every pending status 01."""
        pending = [*self._in_flight.values(), *self._background]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # --------------------------------------------------------------------- outgoing side

    async def resume(self) -> None:
        """Finish what a previous run left in ``.work/outgoing`` before taking new files."""
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
        await self.drain()

    async def claim_outbox(self) -> int:
        """Claim every finished outbox file a free slot allows; returns how many."""
        claimed = 0
        for folder in self.folders.values():
            for name in self._ready_names(folder):
                if self.stopping.is_set():
                    return claimed
                work = folder.outgoing / name
                envelope = work.with_name(name + ENVELOPE_SUFFIX)
                if work in self._in_flight or work.exists() or envelope.exists():
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

    async def send_all(self) -> int:
        """Claim and finish everything in the outboxes now (tests, one-off runs)."""
        claimed = await self.claim_outbox()
        await self.drain()
        return claimed

    def _ready_names(self, folder: AgencyFolder) -> list[str]:
        try:
            entries = list(os.scandir(folder.outbox))
        except FileNotFoundError:
            return []
        ready: list[tuple[int, str]] = []
        for entry in entries:
            if not is_outgoing_name(entry.name):
                continue
            with contextlib.suppress(FileNotFoundError):
                if entry.is_file():
                    ready.append((entry.stat().st_mtime_ns, entry.name))
        # Oldest first, so a burst goes out in the order the software wrote it.
        return [name for _, name in sorted(ready)]

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
                self._in_flight.pop(work, None)

        self._in_flight[work] = asyncio.create_task(guarded(), name=f"send {work.name}")

    async def _send_file(self, folder: AgencyFolder, work: Path) -> None:
        envelope = work.with_name(work.name + ENVELOPE_SUFFIX)
        sealed = await asyncio.to_thread(self._saved_envelope, envelope)
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
            return Sealed(read_header(body).header, body)
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
                sealed = await self._on_sealer(self.adapter.seal, data)
            except BackboneError as error:
                record = error_from_exception(work.name, error)
                if error.reason in _EDXML_REASONS:
                    # seal stops at the first problem; the clerk wants the whole list.
                    examination = await self._on_sealer(examine, data)
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
        if sealed.header.sender != folder.organ_code:
            # One agency's folder must not speak for another, even inside one hub.
            message = (
                f"the document's sender (From/OrganId) is {sealed.header.sender}, but this "
                f"folder sends for {folder.organ_code}"
            )
            record = error_record(
                file=work.name, reason=Reason.POLICY_DENIED.value, message=message
            )
            await asyncio.to_thread(self._fail, folder, work, record)
            return None
        return sealed

    async def _publish(self, folder: AgencyFolder, work: Path, sealed: Sealed) -> Receipt | None:
        header = sealed.header
        fields = {
            "envelope_id": header.envelope_id,
            "document_id": header.document_id,
            "sender": header.sender,
            "file": work.name,
        }
        delay = self.options.retry_initial
        while True:
            try:
                receipt = await asyncio.wait_for(
                    self.adapter.publish(sealed), self.options.publish_timeout
                )
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
                log.info("adapter.sent", **fields, outcome="sent")
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
        atomic_write_json(
            target.with_name(target.name + ".receipt.json"),
            receipt_record(receipt, file=target.name),
            scratch=folder.scratch,
        )
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
        log.warning(
            "adapter.failed",
            file=target.name,
            sender=folder.organ_code,
            outcome=record["reason"],
            issues=len(record["issues"]),
        )

    # --------------------------------------------------------------------- incoming side

    async def _receive_supervised(self) -> None:
        """Keep receiving through failures (a refused write, a lost channel): what was not
        stored was not acknowledged, so the broker hands it out again."""
        delay = self.options.retry_initial
        while not self.stopping.is_set():
            try:
                await self.receive_forever()
            except Exception:
                log.exception("adapter.incoming_failed", outcome="retry", retry_in=delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                delay = min(delay * 2, self.options.retry_max)
            else:
                return  # the adapter was closed

    async def receive_forever(self) -> None:
        """Store every received item; ack it (ask for the next) only once it is on disk,
        then send status 01 for documents."""
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
        atomic_write_bytes(folder.status / f"{stem}.edxml", item.edxml, scratch=folder.scratch)
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
        """Status 01, retried while the broker is away; recorded once sent."""
        folder = self.folders[recipient]
        fields = {"envelope_id": envelope_id, "document_id": document_id, "sender": recipient}
        delay = self.options.retry_initial
        while True:
            try:
                if item is not None and isinstance(self.adapter, _AcknowledgesArrival):
                    await self.adapter.acknowledge_arrival(item)
                else:
                    await self.adapter.send_status(
                        document_id, StatusCode.ARRIVED, sender=recipient
                    )
                break
            except BackboneError as error:
                if not isinstance(error, BrokerUnavailableError):
                    log.warning("adapter.arrival_refused", **fields, outcome=error.reason.value)
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
        marker = folder.journal / envelope_id
        record = {"document_id": document_id, "kind": "document", "arrival_acknowledged": True}
        await asyncio.to_thread(atomic_write_json, marker, record, scratch=folder.scratch)
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
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _forget_old_receipts(self, folder: AgencyFolder) -> None:
        horizon = time.time() - self.options.journal_days * 86400
        for marker in folder.journal.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if marker.stat().st_mtime < horizon:
                    marker.unlink()


_EDXML_REASONS = frozenset(
    {
        Reason.EDXML_INVALID,
        Reason.EDXML_NOT_WELL_FORMED,
        Reason.EDXML_UNSAFE,
        Reason.EDXML_TOO_LARGE,
    }
)


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
