"""The gateway: the axis' own HTTP API (``sendEdoc``, ``getReceivedEdocList``, ``getEdoc``,
``updateStatus``, ``getSentEdocList``, the agency lists…) on the adapter, so agencies'
existing document software connects by changing its endpoint (docs/gateway.md).

- :mod:`~adapters.gateway.wire`: authentication (HMAC over the signed headers), ``hash-file``,
  the body, responses; pure;
- :mod:`~adapters.gateway.operations`: every operation, on the adapter client;
- :mod:`~adapters.gateway.state`: the durable state (SQLite): received items until ``done``,
  sent documents and what became of them, proposals;
- :mod:`~adapters.gateway.inbound`: received items and the router's events into the state;
- :mod:`~adapters.gateway.arrivals`: status 01 once the software has a document;
- :mod:`~adapters.gateway.directory_feed`: the agency lists;
- :mod:`~adapters.gateway.http`, :mod:`~adapters.gateway.service`: the HTTP face and the
  service that runs it all; :mod:`~adapters.gateway.systems`: the connected systems it serves.


"""

from adapters.gateway.service import Gateway
from adapters.gateway.state import GatewayState
from adapters.gateway.systems import ResolvedSystem, resolve_systems
from adapters.gateway.wire import SignedRequest, authenticate, unpadded_sha256_hex

__all__ = [
    "Gateway",
    "GatewayState",
    "ResolvedSystem",
    "SignedRequest",
    "authenticate",
    "resolve_systems",
    "unpadded_sha256_hex",
]
