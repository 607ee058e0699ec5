"""The client's memory of what it has handed out, against redeliveries.

A bounded, in-memory first line only (lost on restart): durable deduplication is the
consumer's, by ``Received.envelope_id`` and ``recipient``. For each (envelope id, served
recipient) pair it also remembers whether status 01 (or, for a refusal, status 02) is done.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

__all__ = ["SEEN_LIMIT", "DeliveredMemory"]

SEEN_LIMIT: Final = 16_384  # (envelope id, recipient) pairs remembered against redeliveries

Key = tuple[str, str]  # (envelope id, served recipient)


class DeliveredMemory:
    def __init__(self, limit: int = SEEN_LIMIT) -> None:
        self._limit = limit
        self._seen: OrderedDict[Key, bool] = OrderedDict()  # → arrival sent

    def __contains__(self, key: Key) -> bool:
        return key in self._seen

    def answered(self, key: Key, default: bool = False) -> bool:
        """Whether its status 01 (02 for a refusal) is done; ``default`` when not seen."""
        return self._seen.get(key, default)

    def remember(self, key: Key, *, arrived: bool) -> None:
        self._seen[key] = self._seen.get(key, False) or arrived
        self._seen.move_to_end(key)
        while len(self._seen) > self._limit:
            self._seen.popitem(last=False)

    def mark_answered(self, key: Key) -> None:
        """Its status 01 was sent (only for a pair still remembered)."""
        if key in self._seen:
            self._seen[key] = True
