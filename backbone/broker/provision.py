"""Broker accounts from the directory, with least privilege.

One broker user per connected system (a direct agency or a hub): it may publish only to the
submit exchange, read only its own inbox and events queues, and configure nothing. The
router's user may touch everything under the prefix. Applied through the management API,
or exported as RabbitMQ definitions (``rabbitmqctl import_definitions``).
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

from backbone.broker.management import ManagementClient
from backbone.directory import Directory
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


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """A RabbitMQ policy: what the topology leaves to operators to tune without redeploying."""

    name: str
    pattern: str
    definition: dict[str, Any]
    apply_to: str = "queues"


def plan_policies(names: Names, *, delivery_limit: int = 20) -> list[PolicySpec]:
    """Events queues are declared without a delivery limit (events are small and
    idempotent); this policy keeps a poison event from looping forever on 3.x, and
    dead-letters it where operators look, instead of dropping it (4.x's default)."""
    return [
        PolicySpec(
            name=f"{names.prefix}-events",
            pattern=f"^{re.escape(names.prefix)}\\.events\\.",
            definition={
                "delivery-limit": delivery_limit,
                "dead-letter-exchange": names.dead_letter_exchange,
                "dead-letter-strategy": "at-least-once",
                "overflow": "reject-publish",
            },
        )
    ]


def _only(*names: str) -> str:
    return "^(" + "|".join(re.escape(name) for name in names) + ")$"


def plan_accounts(directory: Directory, names: Names, *, router_user: str) -> list[AccountSpec]:
    specs = [
        AccountSpec(
            user=router_user,
            system="router",
            configure=f"^{re.escape(names.prefix)}\\.",
            # The quarantine is fed through the default exchange, named amq.default here.
            write=f"^({re.escape(names.prefix)}\\..*|amq\\.default)$",
            read=f"^{re.escape(names.prefix)}\\.",
        )
    ]
    for system in directory.connected_systems:
        if system.broker_account is None:
            continue
        specs.append(
            AccountSpec(
                user=system.broker_account,
                system=system.system_id,
                configure=NOTHING,
                write=_only(names.submit_exchange),
                read=_only(
                    names.inbox_queue(system.system_id), names.events_queue(system.system_id)
                ),
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
    """RabbitMQ definitions (users, permissions, policies) for ``rabbitmqctl
    import_definitions``."""
    return {
        "policies": [
            {
                "vhost": vhost,
                "name": policy.name,
                "pattern": policy.pattern,
                "apply-to": policy.apply_to,
                "definition": policy.definition,
                "priority": 0,
            }
            for policy in policies
        ],
        "users": [
            {
                "name": spec.user,
                "password_hash": rabbit_password_hash(passwords[spec.user]),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": [],
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
    """Create or update every user with its permissions, and every policy; returns how many
    users."""
    for policy in policies:
        await management.set_policy(
            policy.name,
            pattern=policy.pattern,
            definition=policy.definition,
            apply_to=policy.apply_to,
        )
    for spec in specs:
        await management.create_user(spec.user, passwords[spec.user])
        await management.set_permissions(
            spec.user, configure=spec.configure, write=spec.write, read=spec.read
        )
    return len(specs)
