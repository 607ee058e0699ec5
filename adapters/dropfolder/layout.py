"""Where everything lives in one agency's drop folder.

<folder>/outbox/    the agency's software drops finished ``*.edxml`` here
<folder>/sent/      sent documents, each with ``<name>.receipt.json``
<folder>/failed/    documents not delivered, each with ``<name>.error.json``: refused by the
                    adapter before sending, or by the router after (then with the receipt
                    moved from ``sent/``; :mod:`adapters.dropfolder.outcomes`)
<folder>/inbox/     ``<envelope_id>/`` per received document
<folder>/status/    ``<sealed>_<code>_<envelope_id>.edxml`` (+ ``.json``) per status
<folder>/rejected/  ``<envelope_id>/`` per received envelope whose content was refused:
                    ``error.json`` (reason, message), ``envelope.vdx`` (as it arrived,
                    encrypted), ``decrypted.edxml`` (when decryption got that far)
<folder>/.work/     the adapter's own state, on the same file system (atomic renames)
    outgoing/       claimed outbox files and their sealed ``.envelope`` (resumed at start)
    incoming/       inbox entries being assembled (discarded at start: not yet acked)
    received/       one marker per envelope written, so redeliveries are not written twice
    tmp/            temporary files of atomic writes (discarded at start)
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = ["AgencyFolder"]


@dataclass(frozen=True, slots=True)
class AgencyFolder:
    organ_code: str
    root: Path

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def sent(self) -> Path:
        return self.root / "sent"

    @property
    def failed(self) -> Path:
        return self.root / "failed"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def status(self) -> Path:
        return self.root / "status"

    @property
    def rejected(self) -> Path:
        return self.root / "rejected"

    @property
    def work(self) -> Path:
        return self.root / ".work"

    @property
    def outgoing(self) -> Path:
        return self.work / "outgoing"

    @property
    def incoming(self) -> Path:
        return self.work / "incoming"

    @property
    def journal(self) -> Path:
        return self.work / "received"

    @property
    def scratch(self) -> Path:
        return self.work / "tmp"

    def prepare(self) -> None:
        """Create every directory; throw away half-built incoming entries and temp files.

        Those belong to deliveries not yet acknowledged to the broker, which will deliver
        them again, so discarding them loses nothing."""
        for directory in (
            self.outbox,
            self.sent,
            self.failed,
            self.inbox,
            self.status,
            self.rejected,
            self.outgoing,
            self.journal,
        ):
            directory.mkdir(parents=True, exist_ok=True)
        for transient in (self.incoming, self.scratch):
            shutil.rmtree(transient, ignore_errors=True)
            transient.mkdir(parents=True)
