"""The drop folder: document software exchanges files, the adapter does the rest.

One folder per agency (hub mode: several), laid out as :mod:`adapters.dropfolder.layout`
describes, served through one :class:`~adapters.abc.Adapter`:

- :mod:`~adapters.dropfolder.outgoing`: outbox files claimed, sealed, published, filed in
  ``sent/`` or ``failed/``, resumable after a crash;
- :mod:`~adapters.dropfolder.incoming`: received items written into ``inbox/``,
  ``status/`` or ``rejected/`` before they are acknowledged, then status 01;
- :mod:`~adapters.dropfolder.outcomes`: the router's events about sent files written
  beside them (a refused one moved to ``failed/``) before they are acknowledged;
- :mod:`~adapters.dropfolder.lock`: one adapter process per folder;
- :mod:`~adapters.dropfolder.files`, :mod:`~adapters.dropfolder.records`: atomic writes,
  safe names, and the JSON files written beside documents.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from pathlib import Path

from adapters.abc import Adapter, Received, Refused
from adapters.dropfolder.incoming import InboxReceiver
from adapters.dropfolder.layout import AgencyFolder
from adapters.dropfolder.lock import FolderLocks
from adapters.dropfolder.options import DropFolderOptions
from adapters.dropfolder.outcomes import SentOutcomes
from adapters.dropfolder.outgoing import OutboxSender
from adapters.sealing_thread import SealingThread
from backbone.errors import ConfigurationError

__all__ = [
    "AgencyFolder",
    "DropFolder",
    "DropFolderOptions",
    "FolderLocks",
    "InboxReceiver",
    "OutboxSender",
    "SealingThread",
    "SentOutcomes",
]


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
        self._locks = FolderLocks()
        self._sealer = SealingThread()
        self.outgoing = OutboxSender(
            adapter, self.folders, self.options, self.stopping, self._sealer
        )
        self.incoming = InboxReceiver(adapter, self.folders, self.options, self.stopping)
        self.outcomes = SentOutcomes(
            adapter, self.folders, self.options, self.stopping, self.outgoing
        )

    # ----------------------------------------------------------------- the whole service

    async def run(self) -> None:
        """Prepare, resume, then serve outbox and inbox until :meth:`stop`; in-flight files
        are finished (or left resumable in ``.work``) before it returns."""
        self.prepare()
        incoming = asyncio.create_task(
            self.incoming.receive_supervised(), name="dropfolder-incoming"
        )
        outcomes: asyncio.Task[None] | None = None
        try:
            await self.resume()
            # After resuming: what the router says about a resumed file finds it in sent/.
            outcomes = asyncio.create_task(
                self.outcomes.receive_supervised(), name="dropfolder-outcomes"
            )
            while not self.stopping.is_set():
                await self.claim_outbox()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), self.options.poll_interval)
        finally:
            self.stopping.set()
            await self.drain()
            for task in (incoming, outcomes):
                if task is None:
                    continue
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._sealer.shutdown()

    def stop(self) -> None:
        """Take no new outbox file; let what is in flight finish."""
        self.stopping.set()

    def prepare(self) -> None:
        for folder in self.folders.values():
            self._locks.acquire(folder)  # before prepare() discards anything in .work
            folder.prepare()
            self.incoming.forget_old_receipts(folder)
        self._sealer.warm_up()

    async def drain(self) -> None:
        """Wait for every outbox file in flight and every pending status 01."""
        pending = [*self.outgoing.in_flight.values(), *self.incoming.background]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # --------------------------------------------------------------------- outgoing side

    async def resume(self) -> None:
        """Finish what a previous run left in ``.work/outgoing`` before taking new files."""
        await self.outgoing.resume()
        await self.drain()

    async def claim_outbox(self) -> int:
        """Claim every finished outbox file a free slot allows; returns how many."""
        return await self.outgoing.claim_outbox()

    async def send_all(self) -> int:
        """Claim and finish everything in the outboxes now (tests, one-off runs)."""
        claimed = await self.claim_outbox()
        await self.drain()
        return claimed

    # --------------------------------------------------------------------- incoming side

    async def receive_forever(self) -> None:
        """Store every received item; ack it (ask for the next) only once it is on disk,
        then send status 01 for documents."""
        await self.incoming.receive_forever()

    async def store(self, item: Received) -> bool:
        """Write ``item`` into its agency's folder unless it is a redelivery. Returns whether
        status 01 is still owed for it."""
        return await self.incoming.store(item)

    async def keep_refused(self, refusal: Refused) -> None:
        """Keep refused content in its agency's ``rejected/`` (once per envelope)."""
        await self.incoming.keep_refused(refusal)
