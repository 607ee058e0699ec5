"""The adapter's own count of inbox messages it handed back to the broker, so that one that
keeps failing is dead-lettered whatever the broker counts.

A message the adapter cannot take now (a CRL out of date, the store or broker gone, a bug)
goes back to its inbox to be tried again. The broker's ``x-delivery-limit`` was all that
ended such a loop, and it may be absent (none on RabbitMQ 3.x unless declared) or blind
(4.3 no longer counts a nack). The adapter cannot publish into its own inbox with a count in
a header, as the router does with its inbound queue (only the router writes to the tier
exchanges), so it counts in memory, per message, and at the limit rejects without requeue:
the inbox's dead-letter exchange takes it and the router tells the sender.

In memory and bounded: a restarted adapter counts again from zero (the broker's limit, where
there is one, still bounds a crash loop), and several processes on one inbox count each
their own.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Final

from backbone.broker.direct_consume import Received
from backbone.wire import H_ENVELOPE, header_text

__all__ = ["HAND_BACKS_REMEMBERED", "HandBacks"]

HAND_BACKS_REMEMBERED: Final = 16_384  # messages whose hand-backs are counted at once


class HandBacks:
    def __init__(self, limit: int, remembered: int = HAND_BACKS_REMEMBERED) -> None:
        """``limit``: failures of one message before it is dead-lettered instead."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1; got {limit}")
        self.limit = limit
        self._remembered = remembered
        self._failures: OrderedDict[str, int] = OrderedDict()

    def failed(self, message: Received) -> bool:
        """Count a failure of ``message``: True when it may go back to the queue, False when
        it has failed ``limit`` times and is to be dead-lettered (then it is forgotten)."""
        key = _key(message)
        failures = self._failures.pop(key, 0) + 1
        if failures >= self.limit:
            return False
        self._failures[key] = failures
        while len(self._failures) > self._remembered:
            self._failures.popitem(last=False)
        return True

    def done(self, message: Received) -> None:
        """``message`` was taken or settled for good: forget its failures."""
        self._failures.pop(_key(message), None)


def _key(message: Received) -> str:
    # The router sets the envelope id on everything it routes (only it writes to the tier
    # exchanges); the body's digest for anything else.
    return header_text(message, H_ENVELOPE) or hashlib.sha256(message.body).hexdigest()
