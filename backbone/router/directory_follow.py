"""The broker following a directory version (``backbone directory apply``, docs/directory.md):
what the topology and the accounts lack or no longer need, compared with what the broker
holds, and the changes that bring it in line.

Added: the inboxes, events queues and bindings :func:`plan_topology` plans, and an account
for each connected system as ``backbone provision`` plans it. Removed: bindings of a live
system that its plan no longer has (an agency moved to another hub), and the queues and
account of a retired system — closed (version 2's ``status: closed``) with its transition
window over, or no longer connected itself (moved under a hub). A retired system's queue is
deleted only empty, and its account only once both its queues are gone; the rest is kept and
listed, for a later run (``backbone directory apply RUNNING --running RUNNING``) to remove
once drained.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiormq.exceptions
from aio_pika.abc import AbstractChannel

from backbone.broker.management import ManagementClient
from backbone.broker.provision import AccountSpec, provision, system_read_permission
from backbone.directory import Directory, Status
from backbone.router.topology import BindingSpec, TopologyPlan, declare_plan
from backbone.wire.names import Names

__all__ = ["BrokerFollow", "Kept", "apply_follow", "plan_follow"]


@dataclass(frozen=True, slots=True)
class Kept:
    """A retired or closing system's queue left in place, and why."""

    queue: str
    why: str

    def line(self) -> str:
        return f"kept: {self.queue}, {self.why}"


@dataclass(frozen=True, slots=True)
class BrokerFollow:
    """What the broker lacks or no longer needs for a directory version."""

    topology: TopologyPlan  # its exchanges, and only the queues and bindings missing
    unbind: tuple[BindingSpec, ...]
    accounts: tuple[AccountSpec, ...]  # to create
    drained: tuple[str, ...]  # retired systems' empty queues, to delete
    retire_accounts: tuple[tuple[str, str], ...]  # (user, system): once its queues are gone
    kept: tuple[Kept, ...]
    names: Names

    @property
    def changes(self) -> int:
        """How many things it adds or removes (0: the broker is in line already)."""
        plan = self.topology
        parts = (plan.queues, plan.bindings, self.unbind, self.accounts, self.drained)
        return sum(map(len, parts)) + len(self.retire_accounts)

    def lines(self) -> list[str]:
        """One summary line, then each change and each queue kept."""
        plan = self.topology
        lines = [
            f"broker: {len(plan.queues)} queues, {len(plan.bindings)} bindings, "
            f"{len(self.accounts)} accounts to add; {len(self.unbind)} bindings, "
            f"{len(self.drained)} drained queues, {len(self.retire_accounts)} accounts to "
            f"remove; {len(self.kept)} queues kept"
        ]
        lines += [f"  add queue      {queue.name}" for queue in plan.queues]
        lines += [f"  add binding    {_binding(b)}" for b in plan.bindings]
        lines += [f"  add account    {spec.user} ({spec.system})" for spec in self.accounts]
        lines += [f"  remove binding {_binding(b)}" for b in self.unbind]
        lines += [f"  remove queue   {queue} (empty)" for queue in self.drained]
        lines += [f"  remove account {user} ({system})" for user, system in self.retire_accounts]
        lines += [f"  {kept.line()}" for kept in self.kept]
        return lines


def _binding(binding: BindingSpec) -> str:
    return f"{binding.exchange} -> {binding.queue} {binding.routing_key}"


async def plan_follow(
    management: ManagementClient,
    directory: Directory,
    names: Names,
    topology: TopologyPlan,
    accounts: Sequence[AccountSpec],
    *,
    at: datetime,
    window: timedelta,
    before: Directory | None = None,
) -> BrokerFollow:
    """Compare ``topology`` and ``accounts`` (planned for ``directory``) with the broker at
    ``at``; ``window`` is the routers' transition window; ``before`` the running version,
    whose accounts a system leaving the direct connection gives back."""
    depths = await management.queue_depths(prefix=f"{names.prefix}.")
    bound = await management.bindings_to_queues(prefix=f"{names.prefix}.")
    closing = _closing(directory, at, window)
    connected = {system.system_id for system in directory.connected_systems}
    retired = {s for s, ends in closing.items() if ends is None}
    retired |= _systems_on_broker(depths, names) - connected
    retired_queues = {q for system in retired for q in _queues(names, system)}

    queues = tuple(
        q for q in topology.queues if q.name not in depths and q.name not in retired_queues
    )
    planned = set(topology.bindings)
    existing = {BindingSpec(*row) for row in bound}
    bindings = tuple(
        b for b in topology.bindings if b not in existing and b.queue not in retired_queues
    )
    live_queues = {q.name for q in topology.queues} - retired_queues
    system_queues = {q for q in live_queues if _system_of(q, names) is not None}
    # A live system's bindings its plan dropped (moved to another hub), and every binding
    # of a retired one: what it still holds is kept, but nothing more reaches it.
    unbind = tuple(
        sorted(
            (
                b
                for b in existing
                if (b.queue in system_queues and b not in planned) or b.queue in retired_queues
            ),
            key=_binding,
        )
    )
    users = await management.user_names()
    new_accounts = tuple(
        spec for spec in accounts if spec.user not in users and spec.system not in retired
    )

    drained: list[str] = []
    kept: list[Kept] = []
    retire_accounts: list[tuple[str, str]] = []
    for system in sorted(retired):
        waiting = [(q, depths[q]) for q in _queues(names, system) if q in depths]
        drained += [q for q, count in waiting if count == 0]
        kept += [Kept(q, _waiting(q, count, names)) for q, count in waiting if count]
        if not any(count for _, count in waiting):
            owners = await _accounts_of(management, names, system, (directory, before))
            retire_accounts += [(user, system) for user in sorted(owners) if user in users]
    for system, ends in sorted(closing.items()):
        if ends is not None:
            kept += [
                Kept(q, f"closed; its transition window ends {ends.isoformat()}")
                for q in _queues(names, system)
                if q in depths
            ]
    return BrokerFollow(
        topology=TopologyPlan(topology.exchanges, queues, bindings),
        unbind=unbind,
        accounts=new_accounts,
        drained=tuple(drained),
        retire_accounts=tuple(retire_accounts),
        kept=tuple(kept),
        names=names,
    )


async def apply_follow(
    follow: BrokerFollow,
    channel: AbstractChannel,
    management: ManagementClient,
    passwords: dict[str, str],
) -> tuple[Kept, ...]:
    """Make the changes of ``follow``: declare before removing, so no document finds its
    system without a binding meanwhile. Returns what was kept, with any queue that holds
    messages after all when it is to be deleted (its system's account then stays too)."""
    await declare_plan(channel, follow.topology)
    await provision(management, list(follow.accounts), passwords)
    connection = (await channel.get_underlay_channel()).connection
    kept = list(follow.kept)
    not_empty: set[str] = set()
    worker = await connection.channel()
    try:
        for binding in follow.unbind:
            await worker.queue_unbind(binding.queue, binding.exchange, binding.routing_key)
        for queue in follow.drained:
            # Counted empty by the management API (sampled seconds ago), unbound now; quorum
            # queues refuse an if-empty delete, so ask the queue itself before deleting it.
            try:
                found = await worker.queue_declare(queue, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:  # gone already; it closed the channel
                worker = await connection.channel()
                continue
            waiting = found.message_count or 0
            if waiting or found.consumer_count:
                not_empty.add(queue)
                why = _waiting(queue, waiting, follow.names) if waiting else "still consumed"
                kept.append(Kept(queue, why))
                continue
            await worker.queue_delete(queue)
    finally:
        if not worker.is_closed:
            await worker.close()
    for user, system in follow.retire_accounts:
        if not not_empty & set(_queues(follow.names, system)):
            await management.delete_user(user)
    return tuple(kept)


def _closing(directory: Directory, at: datetime, window: timedelta) -> dict[str, datetime | None]:
    """Each closed connected system: when its transition window ends, or None when it has
    (the system retires). A closing with no date has no window."""
    found: dict[str, datetime | None] = {}
    for system in directory.connected_systems:
        if system.status is not Status.CLOSED:
            continue
        if system.closes is None:
            found[system.system_id] = None
            continue
        ends = directory.timeline.instant(system.closes) + window
        found[system.system_id] = None if at >= ends else ends
    return found


def _queues(names: Names, system: str) -> tuple[str, str]:
    return names.inbox_queue(system), names.events_queue(system)


def _system_of(queue: str, names: Names) -> str | None:
    """The connected system whose inbox or events queue ``queue`` is; None for the others."""
    if queue == names.events_operators_queue:
        return None
    for start in (names.inbox_queue(""), names.events_queue("")):
        if queue.startswith(start):
            return queue.removeprefix(start)
    return None


def _systems_on_broker(queues: Iterable[str], names: Names) -> set[str]:
    return {system for q in queues if (system := _system_of(q, names)) is not None}


def _waiting(queue: str, count: int, names: Names) -> str:
    what = "document" if queue.startswith(names.inbox_queue("")) else "event"
    return f"{count} {what}{'' if count == 1 else 's'} waiting"


async def _accounts_of(
    management: ManagementClient,
    names: Names,
    system: str,
    directories: Iterable[Directory | None],
) -> set[str]:
    """The accounts standing for ``system``: as either version names it, and any user
    whose read permission is exactly that system's (as ``backbone provision`` grants)."""
    owners = set(await management.readers_of(system_read_permission(names, system)))
    for directory in directories:
        if directory is None:
            continue
        for entry in directory.connected_systems:
            if entry.system_id == system and entry.broker_account is not None:
                owners.add(entry.broker_account)
    return owners
