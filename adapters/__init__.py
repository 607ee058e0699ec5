"""Adapter workers: the agency's side of the backbone (sign, encrypt, publish; receive,
decrypt, verify, deliver). Built on ``backbone``'s shared core.

``AdapterClient`` is the Python API (see :mod:`adapters.client` for acknowledgement,
redeliveries, status 01 and the router's ``Event`` s about what was sent);
``AdapterConfig`` loads its configuration.
"""

from adapters.abc import (
    Adapter,
    Event,
    EventType,
    Receipt,
    Received,
    RefusalKeeper,
    Refused,
    Sealed,
)
from adapters.client import AdapterClient, processing_order
from adapters.config import AdapterConfig, ServedAgency

__all__ = [
    "Adapter",
    "AdapterClient",
    "AdapterConfig",
    "Event",
    "EventType",
    "Receipt",
    "Received",
    "RefusalKeeper",
    "Refused",
    "Sealed",
    "ServedAgency",
    "processing_order",
]
