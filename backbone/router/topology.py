"""What the backbone declares on the broker, derived from the directory (docs/topology.md).

:func:`plan_topology` turns a directory into exchanges, queues and bindings (data, no
broker); :func:`apply_topology` declares them, durable and with the same arguments every
time, so running it at every router start is a no-op once the topology exists. Apply only
adds: stale queues and bindings of agencies that left the directory stay until removed by
hand.

Inboxes exist per connected system (a direct agency or a hub), never per organ code. A hub
binds subtree patterns (``H53.#``) so its agencies need no binding each; where a served
subtree also holds agencies served by someone else (a ministry that connects directly while
its bureaus use the ministry's hub), the hub binds around them, so no document reaches two
inboxes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiormq.abc
from aio_pika.abc import AbstractChannel

from backbone.directory import Agency, Directory, Hub
from backbone.envelope import DEFAULT_MAX_ENVELOPE_SIZE
from backbone.errors import DirectoryError, UnknownAgencyError
from backbone.organ import OrganCode
from backbone.tiers import Tier
from backbone.wire.names import Names

__all__ = [
    "BROKER_MAX_MESSAGE_BYTES",
    "DEFAULT_DELIVERY_LIMIT",
    "BindingSpec",
    "ExchangeSpec",
    "QueueSpec",
    "TopologyPlan",
    "TopologyReport",
    "apply_topology",
    "declare_plan",
    "plan_topology",
]

DEFAULT_DELIVERY_LIMIT = 5
BROKER_MAX_MESSAGE_BYTES = 512 * 1024 * 1024
"""RabbitMQ's hard ceiling for ``max_message_size``: no broker carries a larger message."""

ExchangeKind = Literal["direct", "fanout", "topic"]


# The directory versions stream: about 30 versions at country size (1.94 MB each).
STREAM_MAX_BYTES = 64 * 1024 * 1024
STREAM_SEGMENT_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ExchangeSpec:
    name: str
    kind: ExchangeKind
    alternate: str | None = None  # where messages no binding matches go

    @property
    def arguments(self) -> dict[str, Any]:
        return {"alternate-exchange": self.alternate} if self.alternate else {}


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A durable quorum queue; with ``dead_letter`` it dead-letters (at least once) after
    ``delivery_limit`` failed deliveries. ``stream``: a stream instead (read without being
    consumed), that keeps its last ``STREAM_MAX_BYTES``."""

    name: str
    dead_letter: str | None = None
    delivery_limit: int | None = None
    stream: bool = False

    @property
    def arguments(self) -> dict[str, Any]:
        if self.stream:
            return {
                "x-queue-type": "stream",
                "x-max-length-bytes": STREAM_MAX_BYTES,
                # Retention drops whole segments, never the one being written: the last
                # version always stays.
                "x-stream-max-segment-size-bytes": STREAM_SEGMENT_BYTES,
            }
        arguments: dict[str, Any] = {"x-queue-type": "quorum"}
        if self.delivery_limit is not None:
            # 3.10 has no default limit (4.x has 20): always say it.
            arguments["x-delivery-limit"] = self.delivery_limit
        if self.dead_letter is not None:
            arguments["x-dead-letter-exchange"] = self.dead_letter
            # at-least-once dead-lettering needs reject-publish; it also makes a full queue
            # refuse publishes (the publisher sees a nack) instead of dropping the oldest.
            arguments["x-dead-letter-strategy"] = "at-least-once"
            arguments["x-overflow"] = "reject-publish"
        return arguments


@dataclass(frozen=True, slots=True)
class BindingSpec:
    exchange: str
    queue: str
    routing_key: str


@dataclass(frozen=True, slots=True)
class TopologyPlan:
    exchanges: tuple[ExchangeSpec, ...]
    queues: tuple[QueueSpec, ...]
    bindings: tuple[BindingSpec, ...]


@dataclass(frozen=True, slots=True)
class TopologyReport:
    exchanges: int
    queues: int
    bindings: int
    seconds: float
    max_message_bytes: int

    def __str__(self) -> str:
        return (
            f"declared {self.exchanges} exchanges, {self.queues} queues, {self.bindings} "
            f"bindings in {self.seconds:.2f} s; the broker's max_message_size must be at "
            f"least {self.max_message_bytes} bytes (see docs/topology.md)"
        )


@dataclass(frozen=True, slots=True)
class _Route:
    """A routing key (exact or pattern) and the tier exchanges it is bound on."""

    key: str
    tiers: tuple[Tier, ...]


def plan_topology(
    directory: Directory, names: Names, *, delivery_limit: int | None = DEFAULT_DELIVERY_LIMIT
) -> TopologyPlan:
    """Everything to declare for ``directory``, in declaration order; no broker needed.
    ``delivery_limit`` None declares no ``x-delivery-limit`` (the broker's default then
    applies: none on 3.x, 20 on 4.x); the router counts its own attempts either way."""
    if delivery_limit is not None and delivery_limit < 1:
        raise ValueError(f"delivery_limit must be at least 1; got {delivery_limit}")
    tiers = directory.tiers.tiers
    exchanges = [
        ExchangeSpec(names.submit_exchange, "direct"),
        ExchangeSpec(names.dead_letter_exchange, "fanout"),
        ExchangeSpec(names.unroutable_exchange, "fanout"),
        *(ExchangeSpec(names.tier_exchange(t), "topic", names.unroutable_exchange) for t in tiers),
        ExchangeSpec(names.events_exchange, "topic"),
        ExchangeSpec(names.directory_exchange, "fanout"),
    ]

    def guarded(name: str) -> QueueSpec:
        return QueueSpec(name, names.dead_letter_exchange, delivery_limit)

    queues = [
        guarded(names.inbound_queue),
        guarded(names.chunk_queue),
        QueueSpec(names.dead_letter_parked),
        QueueSpec(names.dead_letter_notify),
        QueueSpec(names.unroutable_parked),
        QueueSpec(names.unroutable_notify),
        QueueSpec(names.quarantine_queue),
        QueueSpec(names.events_operators_queue),
        QueueSpec(names.directory_stream, stream=True),
    ]
    bindings = [
        BindingSpec(names.submit_exchange, names.inbound_queue, names.submit_routing_key),
        BindingSpec(names.submit_exchange, names.chunk_queue, names.chunk_routing_key),
        BindingSpec(names.dead_letter_exchange, names.dead_letter_parked, ""),
        BindingSpec(names.dead_letter_exchange, names.dead_letter_notify, ""),
        BindingSpec(names.unroutable_exchange, names.unroutable_parked, ""),
        BindingSpec(names.unroutable_exchange, names.unroutable_notify, ""),
        BindingSpec(names.events_exchange, names.events_operators_queue, "#"),
        BindingSpec(names.directory_exchange, names.directory_stream, ""),
    ]
    for system, routes in _systems(directory):
        inbox, events = names.inbox_queue(system), names.events_queue(system)
        queues += [guarded(inbox), QueueSpec(events)]
        for route in routes:
            bindings += [BindingSpec(names.tier_exchange(t), inbox, route.key) for t in route.tiers]
            bindings.append(BindingSpec(names.events_exchange, events, f"*.{route.key}"))
    _check_unique(queues)
    return TopologyPlan(tuple(exchanges), tuple(queues), tuple(dict.fromkeys(bindings)))


def _check_unique(queues: Sequence[QueueSpec]) -> None:
    # A system id such as "operators" would share a name with a fixed queue.
    seen: set[str] = set()
    for queue in queues:
        if queue.name in seen:
            raise DirectoryError(
                f"queue {queue.name} would be declared twice: a hub id clashes with a name "
                "the topology uses itself; rename the hub"
            )
        seen.add(queue.name)


def _systems(directory: Directory) -> Iterable[tuple[str, list[_Route]]]:
    """Each connected system (hubs first, then direct agencies) with its routes."""
    # Inactive agencies keep their inbox: refusing documents for them is the router's job.
    for system in directory.connected_systems:
        if isinstance(system, Hub):
            yield system.system_id, _hub_routes(directory, system)
        else:
            tier = directory.tier_of(system.organ_code)
            yield system.system_id, [_Route(system.organ_code.routing_key, (tier,))]


def _hub_routes(directory: Directory, hub: Hub) -> list[_Route]:
    routes: list[_Route] = []
    for root in hub.serves:
        try:
            listed: Sequence[Agency] = directory.subtree(root)
        except UnknownAgencyError:  # nobody listed under it yet: the whole subtree is the hub's
            listed = ()
        mine = {a.organ_code for a in listed if a.hub == hub.id}
        others = {a.organ_code for a in listed if a.hub != hub.id}
        routes += _cover(directory, root, mine, others)
    return routes


def _cover(
    directory: Directory, root: OrganCode, mine: set[OrganCode], others: set[OrganCode]
) -> list[_Route]:
    """Routes reaching every code in ``mine`` and nothing in ``others``: one subtree pattern
    where no other system's agency lies below, else exact keys and narrower patterns."""
    below: dict[OrganCode, set[OrganCode]] = {}
    for code in mine | others:
        node = code
        while node != root and node.parent is not None:
            below.setdefault(node.parent, set()).add(node)
            node = node.parent
    blocked = {node for code in others for node in (code, *code.ancestors)}

    def tiers_from(code: OrganCode) -> tuple[Tier, ...]:
        top = directory.tier_of(code).number
        return tuple(t for t in directory.tiers.tiers if t.number >= top)

    routes: list[_Route] = []
    pending = [root]
    while pending:
        node = pending.pop()
        if node not in blocked:
            routes.append(_Route(node.subtree_pattern, tiers_from(node)))
            continue
        if node in mine:
            routes.append(_Route(node.routing_key, (directory.tier_of(node),)))
        # Codes under ``node`` that no listed agency leads to get no route: unroutable
        # (parked, sender told) until the directory lists them and apply runs again.
        pending += sorted(below.get(node, ()), key=str, reverse=True)
    return routes


async def apply_topology(
    channel: AbstractChannel,
    directory: Directory,
    names: Names,
    *,
    delivery_limit: int | None = DEFAULT_DELIVERY_LIMIT,
    max_message_bytes: int = DEFAULT_MAX_ENVELOPE_SIZE,
    channels: int = 4,
) -> TopologyReport:
    """Declare the topology of ``directory`` (idempotent; only ever adds).

    ``max_message_bytes`` is the size bound the router enforces itself: RabbitMQ has no
    per-queue message-size limit, so it is only checked against what any broker can carry
    and reported, for operators to set the broker-wide ``max_message_size`` at least as
    high. The broker refuses a re-declaration with other arguments (another
    ``delivery_limit``, or None where one was declared): PRECONDITION_FAILED, raised as
    aiormq's ``ChannelPreconditionFailed``.
    """
    if not 0 < max_message_bytes <= BROKER_MAX_MESSAGE_BYTES:
        raise ValueError(
            f"max_message_bytes must be between 1 and {BROKER_MAX_MESSAGE_BYTES} (RabbitMQ's "
            f"ceiling for max_message_size); got {max_message_bytes}"
        )
    plan = plan_topology(directory, names, delivery_limit=delivery_limit)
    started = time.perf_counter()
    await declare_plan(channel, plan, channels=channels)
    return TopologyReport(
        exchanges=len(plan.exchanges),
        queues=len(plan.queues),
        bindings=len(plan.bindings),
        seconds=time.perf_counter() - started,
        max_message_bytes=max_message_bytes,
    )


_Operation = Callable[[aiormq.abc.AbstractChannel], Awaitable[object]]


async def declare_plan(channel: AbstractChannel, plan: TopologyPlan, *, channels: int = 4) -> None:
    """Declare ``plan`` over ``channels`` short-lived channels of ``channel``'s connection.

    One channel answers one method at a time, and creating a quorum queue (a Raft group)
    takes milliseconds, so a few channels in parallel cut a country's apply by about a
    third. Exchanges, then queues, then bindings: a binding needs both ends. ``channel``
    itself is only used to reach its connection, so a refused declaration (which closes
    the channel it ran on) leaves it open.
    """
    if channels < 1:
        raise ValueError(f"channels must be at least 1; got {channels}")
    connection = (await channel.get_underlay_channel()).connection
    opened = [await connection.channel() for _ in range(channels)]
    try:
        await _spread(opened, [_exchange(spec) for spec in plan.exchanges])
        await _spread(opened, [_queue(spec) for spec in plan.queues])
        await _spread(opened, [_binding(spec) for spec in plan.bindings])
    finally:
        for worker_channel in opened:
            if not worker_channel.is_closed:
                await worker_channel.close()


def _exchange(spec: ExchangeSpec) -> _Operation:
    def run(channel: aiormq.abc.AbstractChannel) -> Awaitable[object]:
        return channel.exchange_declare(
            spec.name, exchange_type=spec.kind, durable=True, arguments=spec.arguments
        )

    return run


def _queue(spec: QueueSpec) -> _Operation:
    def run(channel: aiormq.abc.AbstractChannel) -> Awaitable[object]:
        return channel.queue_declare(spec.name, durable=True, arguments=spec.arguments)

    return run


def _binding(spec: BindingSpec) -> _Operation:
    def run(channel: aiormq.abc.AbstractChannel) -> Awaitable[object]:
        return channel.queue_bind(spec.queue, spec.exchange, routing_key=spec.routing_key)

    return run


async def _spread(
    channels: Sequence[aiormq.abc.AbstractChannel], operations: Sequence[_Operation]
) -> None:
    """Run ``operations`` with one worker per channel, each sequential on its own."""
    pending = iter(operations)  # shared: each operation is taken by exactly one worker

    async def worker(channel: aiormq.abc.AbstractChannel) -> None:
        for operation in pending:
            await operation(channel)

    try:
        async with asyncio.TaskGroup() as group:
            for channel in channels:
                group.create_task(worker(channel))
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None  # the broker's refusal, not a wrapper
