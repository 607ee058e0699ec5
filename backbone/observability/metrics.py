"""Prometheus metrics of the router (``vdx_`` prefix, Prometheus naming).

Labels stay low-cardinality: tiers, reasons, status codes, kinds. Never a document or
envelope id, never an organ code, except the inbox queue of ``vdx_inbox_oldest_waiting_seconds``:
one per connected system, the label RabbitMQ's own queue metrics carry.
"""

from __future__ import annotations

import asyncio
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar, cast

from prometheus_client import Counter, Gauge, Histogram, Info
from prometheus_client.metrics import MetricWrapperBase

__all__ = [
    "ADAPTER_EVENTS",
    "ADAPTER_RECEIVED",
    "ADAPTER_RECEIVE_FAILURES",
    "ADAPTER_RECONNECTS",
    "ADAPTER_SEND_FAILURES",
    "ADAPTER_SEND_SECONDS",
    "ADAPTER_SENT",
    "ASYNCIO_TASKS",
    "BUILD_INFO",
    "CERTIFICATE_NOT_AFTER",
    "CHUNKS_WAITING",
    "CHUNKS_WAITING_REFUSED",
    "DEAD_LETTERED",
    "DELIVERIES",
    "DOCUMENTS_OVERDUE",
    "DUPLICATES",
    "END_TO_END_SECONDS",
    "ENVELOPES_RECEIVED",
    "ENVELOPES_REJECTED",
    "ENVELOPES_ROUTED",
    "INBOX_FULL",
    "INBOX_OLDEST_WAITING",
    "IN_FLIGHT",
    "OVERDUE_FLAGGED",
    "RATE_LIMITED",
    "ROUTING_SECONDS",
    "STATUSES",
    "UNROUTABLE",
    "VALIDATION_SECONDS",
    "labelled",
]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

BUILD_INFO = Info("vdx_build", "Version of the running backbone")
try:
    BUILD_INFO.info({"version": version("vdx-backbone")})
except PackageNotFoundError:  # running from a source tree that was never installed
    BUILD_INFO.info({"version": "unknown"})

ENVELOPES_RECEIVED = Counter(
    "vdx_envelopes_received_total", "Envelopes the router consumed", ["kind"]
)
ENVELOPES_ROUTED = Counter(
    "vdx_envelopes_routed_total", "Envelopes routed, by the sender's tier", ["tier", "kind"]
)
ENVELOPES_REJECTED = Counter(
    "vdx_envelopes_rejected_total",
    "Envelopes refused and quarantined, by reason and the claimed sender's tier",
    ["reason", "tier"],
)
DELIVERIES = Counter(
    "vdx_deliveries_total", "Recipients an envelope was routed to, by recipient tier", ["tier"]
)
STATUSES = Counter("vdx_statuses_total", "Processing statuses relayed, by code", ["code"])
DUPLICATES = Counter("vdx_duplicates_total", "Resends answered with the original outcome")
UNROUTABLE = Counter("vdx_unroutable_total", "Envelopes parked because nothing was bound")
RATE_LIMITED = Counter(
    "vdx_rate_limited_total",
    "Envelopes refused unread because their publishing account was over its rate limit, by "
    "the tier of the party told",
    ["tier"],
)
DEAD_LETTERED = Counter(
    "vdx_dead_lettered_total", "Envelopes dead-lettered after the delivery limit"
)
INBOX_FULL = Counter(
    "vdx_inbox_full_total",
    "Copies for a recipient whose inbox was at its bound: parked in the dead-letter queue, "
    "the sender told (inbox_full)",
)
CHUNKS_WAITING = Gauge(
    "vdx_chunks_waiting",
    "Chunks this router put back behind the chunk queue that still wait for their header",
)
CHUNKS_WAITING_REFUSED = Counter(
    "vdx_chunks_waiting_refused_total",
    "Chunks of no known header refused at once because their publishing account had "
    "max_waiting_chunks_per_account waiting (too_many_waiting_chunks)",
)
VALIDATION_SECONDS = Histogram(
    "vdx_validation_seconds", "Time to check one envelope", buckets=_LATENCY_BUCKETS
)
ROUTING_SECONDS = Histogram(
    "vdx_routing_seconds",
    "Time from consuming an envelope to its last publisher confirm",
    buckets=_LATENCY_BUCKETS,
)
END_TO_END_SECONDS = Histogram(
    "vdx_end_to_end_seconds",
    "Time from the envelope's creation (its header) to routed",
    buckets=_LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge("vdx_in_flight_messages", "Envelopes being processed by this router")
DIRECTORY_VERSIONS = Counter(
    "vdx_directory_versions_total",
    "Directory versions this process (router, adapter) received, by outcome (applied, refused)",
    ["outcome"],
)
DIRECTORY_REVISION = Gauge(
    "vdx_directory_revision",
    "Revision of the directory version this process (router, adapter) runs with",
)


def _tasks_alive() -> float:
    """Tasks of the running loop: /metrics is served inside the process's own loop."""
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # collected outside any loop (a test's generate_latest())
        return float("nan")


# Counted at each scrape only, so it costs nothing between scrapes; a leak of tasks shows as
# a count that keeps rising under steady load (make soak watches it).
ASYNCIO_TASKS = Gauge("vdx_asyncio_tasks", "Asyncio tasks alive in this process's event loop")
ASYNCIO_TASKS.set_function(_tasks_alive)

# -- tracking (backbone.tracking) ---------------------------------------------------------

DOCUMENTS_OVERDUE = Gauge(
    "vdx_documents_overdue",
    "Documents past their due date and not finished, per recipient, by the recipient's tier "
    "(store-wide: every replica reports the same number)",
    ["tier"],
)
# One series per inbox (a connected system), named as RabbitMQ's own queue metrics name it,
# so rules join the two: bounded by the connected systems (hundreds), not by agencies.
INBOX_OLDEST_WAITING = Gauge(
    "vdx_inbox_oldest_waiting_seconds",
    "Age of the oldest document routed to a recipient behind this inbox that has not "
    "arrived yet (no status 01 back; store-wide: every replica reports the same number)",
    ["queue"],
)
OVERDUE_FLAGGED = Counter(
    "vdx_overdue_flagged_total",
    "Documents this replica flagged overdue (once per recipient), by the recipient's tier",
    ["tier"],
)

# -- adapters ---------------------------------------------------------------------------

ADAPTER_SENT = Counter(
    "vdx_adapter_sent_total", "Envelopes an adapter published and the broker confirmed", ["kind"]
)
ADAPTER_SEND_FAILURES = Counter(
    "vdx_adapter_send_failures_total",
    "Outgoing files or messages that could not be sent (invalid, refused, broker away)",
    ["reason"],
)
ADAPTER_SEND_SECONDS = Histogram(
    "vdx_adapter_send_seconds",
    "Time to validate, sign, encrypt and publish one message (until the confirm)",
    buckets=_LATENCY_BUCKETS,
)
ADAPTER_RECEIVED = Counter(
    "vdx_adapter_received_total", "Documents and statuses delivered to served agencies", ["kind"]
)
ADAPTER_RECEIVE_FAILURES = Counter(
    "vdx_adapter_receive_failures_total",
    "Incoming envelopes refused (bad signature, certificate, decryption…)",
    ["reason"],
)
ADAPTER_EVENTS = Counter(
    "vdx_adapter_events_total",
    "Router events about what served agencies sent, handed to the software or drop folder",
    ["type", "reason"],
)
ADAPTER_RECONNECTS = Counter("vdx_adapter_reconnects_total", "Reconnections to the broker")
CERTIFICATE_NOT_AFTER = Gauge(
    "vdx_certificate_not_after_timestamp_seconds",
    "When a served agency's own certificate expires (Unix time)",
    ["agency"],
)


_Metric = TypeVar("_Metric", bound=MetricWrapperBase)
_children: dict[tuple[MetricWrapperBase, tuple[str, ...]], Any] = {}


def labelled(metric: _Metric, *values: str) -> _Metric:
    """``metric.labels(*values)``, looked up once per metric and values: ``labels()`` checks
    and locks on every call, several times per envelope on the router's path. The labels
    are low-cardinality (above) and no child is ever removed, so the cache stays small."""
    key = (metric, values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return cast(_Metric, child)
