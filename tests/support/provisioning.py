"""A deployment provisioned as production is: least-privilege accounts with their limits,
the bounding policies, a fresh prefix; removed afterwards."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from backbone.broker.bounds import BrokerBounds
from backbone.broker.management import ManagementClient
from backbone.broker.provision import (
    AccountSpec,
    load_or_create_passwords,
    plan_accounts,
    plan_policies,
    provision,
)
from backbone.directory import Directory, DirectoryBuilder
from backbone.envelope import Kind, SealParties, seal
from backbone.router.topology import apply_topology
from backbone.wire.names import Names
from testkit import DevPki, document_edxml, document_id

A, B = "000.00.00.G22", "000.00.00.H41"
HUB, VIA_HUB = "00.53.W00", "000.00.00.H53"


@dataclass(frozen=True)
class Provisioned:
    names: Names
    directory: Directory
    accounts: list[AccountSpec]
    passwords: dict[str, str]
    tag: str

    def account_of(self, system: str) -> str:
        return next(spec.user for spec in self.accounts if spec.system == system)

    @property
    def router_user(self) -> str:
        return self.account_of("router")

    def url(self, amqp_url: str, user: str) -> str:
        return account_url(amqp_url, user, self.passwords[user])


@asynccontextmanager
async def provisioned(
    amqp_url: str, tmp_path: Path, bounds: BrokerBounds | None = None
) -> AsyncIterator[Provisioned]:
    """Direct agencies A and B and a hub serving ``VIA_HUB``, each with its own account."""
    names = Names(prefix=f"t{uuid.uuid4().hex[:8]}")
    tag = uuid.uuid4().hex[:6]
    directory = (
        DirectoryBuilder()
        .direct(A, broker_account=f"a-{tag}")
        .direct(B, broker_account=f"b-{tag}")
        .hub(HUB, VIA_HUB, broker_account=f"hub-{tag}")
        .via_hub(VIA_HUB, HUB)
        .build()
    )
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        await apply_topology(await connection.channel(), directory, names)
    specs = plan_accounts(directory, names, router_user=f"router-{tag}", bounds=bounds)
    passwords = load_or_create_passwords(tmp_path / "passwords.yaml", [s.user for s in specs])
    policies = plan_policies(names, bounds)
    management = ManagementClient.from_env()
    await provision(management, specs, passwords, policies)
    try:
        yield Provisioned(names, directory, specs, passwords, tag)
    finally:
        for spec in specs:
            await management.delete_user(spec.user)
        for policy in policies:
            await management.delete_policy(policy.name)
        await management.delete_prefixed(names.prefix)


def account_url(amqp_url: str, user: str, password: str) -> str:
    parts = urlsplit(amqp_url)
    return f"amqp://{user}:{password}@{parts.hostname}:{parts.port or 5672}/"


async def get_one(queue: AbstractQueue, *, tries: int = 100) -> AbstractIncomingMessage:
    """The next message of ``queue`` (acknowledged), waiting up to ``tries`` × 50 ms."""
    for _ in range(tries):
        message = await queue.get(fail=False)
        if message is not None:
            await message.ack()
            return message
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing arrived in {queue.name}")


def sealed_document(pki: DevPki, number: int, sender: str = A, recipient: str = B) -> bytes:
    """A genuine envelope: document ``number`` from ``sender`` to ``recipient``."""
    return seal(
        document_edxml(sender, [recipient], number),
        SealParties(
            kind=Kind.DOCUMENT,
            sender=sender,
            sender_key=pki.agency(sender).key,
            sender_cert=pki.agency(sender).certificate,
            recipients={recipient: pki.agency(recipient).certificate},
            document_id=document_id(sender, number),
            business_type=0,
        ),
    )
