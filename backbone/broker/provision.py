"""Broker accounts from the directory, with least privilege, and the bounds they live in.

One broker user per connected system (a direct agency or a hub): it may publish only to the
submit exchange, read only its own inbox and events queues and the directory versions
stream, and configure nothing, with a
cap on its connections and channels. The router's user may touch everything under the
prefix. Policies bound the queues nobody is sure to consume (:mod:`backbone.broker.bounds`).
Applied through the management API, or exported as RabbitMQ definitions
(``rabbitmqctl import_definitions``).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from backbone.broker.bounds import AccountLimits, BrokerBounds
from backbone.broker.management import ManagementClient
from backbone.directory import Directory, Hub
from backbone.wire.names import Names

__all__ = [
    "AccountSpec",
    "PolicySpec",
    "definitions",
    "load_or_create_passwords",
    "plan_accounts",
    "plan_policies",
    "provision",
    "rabbit_password_hash",
    "system_read_permission",
]

NOTHING = "^$"


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """One broker user and its permission regexes (configure, write, read) on the vhost."""

    user: str
    system: str  # the hub id or direct agency code it stands for; "router" for the router
    configure: str
    write: str
    read: str
    limits: AccountLimits  # connections and channels it may hold


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """A RabbitMQ policy: what the topology leaves to operators to tune without redeploying."""

    name: str
    pattern: str
    definition: dict[str, Any]
    apply_to: str = "queues"
    priority: int = 0  # of two policies matching a queue, the higher applies (alone)


def plan_policies(names: Names, bounds: BrokerBounds | None = None) -> list[PolicySpec]:
    """Bounds for the queues the router feeds and nobody is sure to consume.

    - the quarantine: records of refused envelopes, oldest dropped past its bound (their
      senders were told, and the router's log line keeps each refusal);
    - every events queue: notifications of what the store keeps, oldest dropped past the
      bound, never a refused publish (which would stall the router on one agency's queue),
      and a delivery limit so a poison event cannot loop forever on 3.x. Nothing is
      dead-lettered: a dropped event would only move the growth to the parked queue;
    - the operators' events queue (which the events pattern matches too, at a lower
      priority): the same, with an age bound, since nothing consumes it;
    - every inbox: a bound that refuses copies past it (``reject-publish``, as the inboxes
      also declare), so one agency that stops fetching cannot fill the broker's disk; the
      router parks what is refused and tells the sender (``inbox_full``).
    """
    bounds = bounds or BrokerBounds()
    prefix = re.escape(names.prefix)
    events_limit = {"delivery-limit": bounds.events_delivery_limit}
    return [
        PolicySpec(
            name=f"{names.prefix}-quarantine",
            pattern=f"^{re.escape(names.quarantine_queue)}$",
            definition=bounds.quarantine.definition(),
        ),
        PolicySpec(
            name=f"{names.prefix}-events",
            pattern=f"^{prefix}\\.events\\.",
            definition=events_limit | bounds.events.definition(),
        ),
        PolicySpec(
            name=f"{names.prefix}-events-operators",
            pattern=f"^{re.escape(names.events_operators_queue)}$",
            definition=events_limit | bounds.operators_events.definition(),
            priority=1,
        ),
        PolicySpec(
            name=f"{names.prefix}-inboxes",
            pattern=f"^{prefix}\\.inbox\\.",
            definition=bounds.inboxes.definition(),
        ),
    ]


def _only(*names: str) -> str:
    return "^(" + "|".join(re.escape(name) for name in names) + ")$"


def system_read_permission(names: Names, system_id: str) -> str:
    """What a connected system's account may read: its own inbox and events queues, and the
    directory versions stream (read without being consumed: reading it takes nothing from
    another system and needs no right to declare or bind)."""
    return _only(
        names.inbox_queue(system_id), names.events_queue(system_id), names.directory_stream
    )


def plan_accounts(
    directory: Directory,
    names: Names,
    *,
    router_user: str,
    operator_user: str | None = None,
    bounds: BrokerBounds | None = None,
) -> list[AccountSpec]:
    """The router's user, ``operator_user`` (it may publish directory versions and nothing
    else: ``backbone directory apply``) and one user per connected system."""
    bounds = bounds or BrokerBounds()
    specs = [
        AccountSpec(
            user=router_user,
            system="router",
            configure=f"^{re.escape(names.prefix)}\\.",
            # The quarantine is fed through the default exchange, named amq.default here.
            write=f"^({re.escape(names.prefix)}\\..*|amq\\.default)$",
            read=f"^{re.escape(names.prefix)}\\.",
            limits=bounds.router,
        )
    ]
    if operator_user is not None:
        specs.append(
            AccountSpec(
                user=operator_user,
                system="operator",
                configure=NOTHING,
                write=_only(names.directory_exchange),
                read=NOTHING,
                limits=bounds.agency,
            )
        )
    for system in directory.connected_systems:
        if system.broker_account is None:
            continue
        specs.append(
            AccountSpec(
                user=system.broker_account,
                system=system.system_id,
                configure=NOTHING,
                write=_only(names.submit_exchange),
                read=system_read_permission(names, system.system_id),
                limits=bounds.hub if isinstance(system, Hub) else bounds.agency,
            )
        )
    return specs


def load_or_create_passwords(path: Path, users: list[str]) -> dict[str, str]:
    """Passwords per user from a YAML file (mode 0600); new users get a random one."""
    known: dict[str, str] = {}
    if path.exists():
        known = {str(k): str(v) for k, v in (yaml.safe_load(path.read_text()) or {}).items()}
    missing = [user for user in users if user not in known]
    if missing:
        known |= {user: secrets.token_urlsafe(24) for user in missing}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_text(yaml.safe_dump(known, sort_keys=True))
    return known


def rabbit_password_hash(password: str, *, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256`` format: base64(salt ‖ SHA-256(salt ‖
    password)) with a 4-byte random salt, as its definitions files expect."""
    salt = salt if salt is not None else secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(
    specs: list[AccountSpec],
    passwords: dict[str, str],
    policies: Sequence[PolicySpec] = (),
    *,
    vhost: str = "/",
) -> dict[str, Any]:
    """RabbitMQ definitions (users with their limits, permissions, policies) for
    ``rabbitmqctl import_definitions`` or a node's ``definitions.local.path``."""
    return {
        "policies": [
            {
                "vhost": vhost,
                "name": policy.name,
                "pattern": policy.pattern,
                "apply-to": policy.apply_to,
                "definition": policy.definition,
                "priority": policy.priority,
            }
            for policy in policies
        ],
        "users": [
            {
                "name": spec.user,
                "password_hash": rabbit_password_hash(passwords[spec.user]),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": [],
                "limits": spec.limits.definition(),
            }
            for spec in specs
        ],
        "permissions": [
            {
                "user": spec.user,
                "vhost": vhost,
                "configure": spec.configure,
                "write": spec.write,
                "read": spec.read,
            }
            for spec in specs
        ],
    }


async def provision(
    management: ManagementClient,
    specs: list[AccountSpec],
    passwords: dict[str, str],
    policies: Sequence[PolicySpec] = (),
) -> int:
    """Create or update every user with its permissions and limits, and every policy;
    returns how many users."""
    for policy in policies:
        await management.set_policy(
            policy.name,
            pattern=policy.pattern,
            definition=policy.definition,
            apply_to=policy.apply_to,
            priority=policy.priority,
        )
    for spec in specs:
        await management.create_user(spec.user, passwords[spec.user])
        await management.set_permissions(
            spec.user, configure=spec.configure, write=spec.write, read=spec.read
        )
        await management.set_user_limits(spec.user, spec.limits.definition())
    return len(specs)
