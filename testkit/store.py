"""Back-ends for the store contract tests, and envelope headers to feed them.

PostgreSQL is always tested for real: ``VDX_TEST_POSTGRES_URL`` (default: the local server,
database ``test``). Each back-end instance gets a fresh schema, dropped afterwards; an
unreachable server fails the test run, it is never skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from backbone.clock import Clock, utc_now
from backbone.edxml.models import Kind
from backbone.envelope import EnvelopeHeader, KeyWrap
from backbone.store import open_store
from backbone.store.abc import Store

POSTGRES_URL = os.environ.get(
    "VDX_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
SENDER = "000.00.32.H53"
RECIPIENT = "000.00.00.G01"
OTHER = "000.00.00.G02"
DOCUMENT_ID = "000.00.32.H53,2024/05/01,123/UBND-VP"


@dataclass(frozen=True)
class Backend:
    """One database that :meth:`open` can open any number of stores on (replicas)."""

    name: str
    url: str
    schema: str | None = None

    async def open(self, *, clock: Clock = utc_now) -> Store:
        return await open_store(self.url, schema=self.schema, clock=clock)


@asynccontextmanager
async def backend(name: str, directory: Path) -> AsyncIterator[Backend]:
    if name == "memory":
        yield Backend(name, "memory://")
    elif name == "sqlite":
        yield Backend(name, f"sqlite+aiosqlite:///{directory / 'store' / 'router.db'}")
    else:
        schema = f"store_test_{uuid.uuid4().hex}"  # open_store creates it
        await _postgres("SELECT 1")
        try:
            yield Backend(name, POSTGRES_URL, schema)
        finally:
            await _postgres(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


async def _postgres(statement: str) -> None:
    engine = create_async_engine(POSTGRES_URL, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(statement))
    except (SQLAlchemyError, OSError) as error:
        pytest.fail(
            f"PostgreSQL at {POSTGRES_URL} is required by the store tests and failed: {error}. "
            "Start it or point VDX_TEST_POSTGRES_URL at one.",
            pytrace=False,
        )
    finally:
        await engine.dispose()


def envelope_id() -> str:
    return str(uuid.uuid4())


def digest(seed: str) -> str:
    """A distinct, well-formed payload digest per seed."""
    return uuid.uuid5(uuid.NAMESPACE_URL, seed).hex * 2


def header(
    *,
    envelope: str | None = None,
    sender: str = SENDER,
    recipients: tuple[str, ...] = (RECIPIENT,),
    document_id: str = DOCUMENT_ID,
    business_type: int | None = 0,
    status_code: str | None = None,
    payload: str = "payload",
) -> EnvelopeHeader:
    """A well-formed header; only the fields the store reads vary."""
    if status_code is not None:
        business_type = None
    return EnvelopeHeader(
        version=1,
        envelope_id=envelope or envelope_id(),
        kind=Kind.DOCUMENT if status_code is None else Kind.STATUS,
        sender=sender,
        recipients=list(recipients),
        document_id=document_id,
        business_type=business_type,
        status_code=status_code,
        created=datetime.now(UTC),
        payload_size=16,
        payload_digest=digest(payload),
        key_commitment=digest("key"),
        content_encryption="A256GCM",
        nonce="AAAAAAAAAAAAAAAA",
        key_wraps=[
            KeyWrap(recipient=r, cert_sha256=digest(r), alg="RSA-OAEP-256", wrapped_key="AAAA")
            for r in recipients
        ],
        sender_certificate="AAAA",
        signature_alg="RSASSA-PSS-SHA256",
    )
