"""Status 01 ("arrived") for documents the software has taken (``updateStatus done``).

The gateway owes 01 from the moment ``done`` is recorded. It seals the 01 once, stores the
sealed bytes, then publishes them; after a crash (or while the broker is away) the owed 01
is published again from the stored bytes, which the router answers as a duplicate: the
sender gets exactly one 01, and never before the software has the document.
"""

from __future__ import annotations

import structlog

from adapters.abc import Sealed
from adapters.client import AdapterClient
from adapters.gateway.state import ArrivalOwed, GatewayState
from adapters.sealing_thread import SealingThread
from backbone.edxml import StatusCode
from backbone.envelope import read_frame
from backbone.errors import BackboneError, BrokerUnavailableError

__all__ = ["Arrivals", "republishable"]

log = structlog.get_logger("adapters.gateway")


def republishable(body: bytes, max_size: int) -> Sealed:
    """A sealed envelope kept as bytes, ready to publish again unchanged."""
    return Sealed(read_frame(body, max_size=max_size).header, body)


class Arrivals:
    def __init__(self, client: AdapterClient, state: GatewayState, sealer: SealingThread) -> None:
        self.client = client
        self.state = state
        self.sealer = sealer

    async def send(self, owed: ArrivalOwed) -> bool:
        """Seal (once), store, publish, record; False when the broker is away (still owed)."""
        body = owed.sealed
        if body is None:
            sealed = await self.sealer.run(
                lambda _: self.client.seal_status(
                    owed.document_id, StatusCode.ARRIVED, sender=owed.recipient
                ),
                b"",
            )
            # After a restart the software's repeated `done` and the owed-01 loop may both
            # seal this 01: only the first sealed is published, by both (a duplicate).
            kept = await self.state.run(self.state.keep_arrival, owed.doc_id, sealed.body)
            if kept is None:
                return True  # the other one sent it meanwhile
            body = kept
        try:
            await self.client.publish(republishable(body, self.client.config.max_envelope_bytes))
        except BrokerUnavailableError as error:
            log.warning(
                "gateway.arrival_waiting",
                doc_id=owed.doc_id,
                document_id=owed.document_id,
                problem=error.message,
                outcome="owed",
            )
            return False
        await self.state.run(self.state.arrival_sent, owed.doc_id)
        log.info(
            "gateway.arrival_sent",
            doc_id=owed.doc_id,
            document_id=owed.document_id,
            recipient=owed.recipient,
            outcome="sent",
        )
        return True

    async def send_owed(self) -> int:
        """Every 01 still owed (after a restart, or the broker's return); how many went."""
        sent = 0
        for owed in await self.state.run(self.state.arrivals_owed):
            try:
                sent += await self.send(owed)
            except BackboneError as error:  # a 01 that cannot be sealed: say so, keep going
                log.error(
                    "gateway.arrival_unsendable",
                    doc_id=owed.doc_id,
                    document_id=owed.document_id,
                    reason=error.reason.value,
                    error=error.message,
                    outcome="owed",
                )
        return sent
