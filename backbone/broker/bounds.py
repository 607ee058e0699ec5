"""How much one broker account and one unconsumed queue may hold (docs/topology.md, "Bounds").

Provisioned with the accounts (``backbone provision --bounds FILE``): per-user connection and
channel limits, and the policies that bound the queues nobody is guaranteed to consume
(quarantine, events). Policies, not queue arguments: RabbitMQ applies a changed policy to
existing queues, while a queue's arguments can never change once it is declared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backbone.envelope.model import summarize
from backbone.errors import ConfigurationError

__all__ = ["AccountLimits", "BrokerBounds", "QueueBound"]

_MiB = 1024 * 1024
_DAY = 24 * 3600


class AccountLimits(BaseModel):
    """RabbitMQ user limits: connections, and channels across all of them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_connections: int = Field(ge=1)
    max_channels: int = Field(ge=1)

    def definition(self) -> dict[str, int]:
        """As RabbitMQ names them (user limits, definitions' ``limits``)."""
        return {"max-connections": self.max_connections, "max-channels": self.max_channels}


class QueueBound(BaseModel):
    """A policy's bound on a queue: total body bytes, messages and, optionally, age. By
    default the oldest messages are dropped first (``overflow: drop-head``): the queue never
    refuses a publish, so the router never stalls on a queue nobody reads. Inboxes refuse
    instead (``reject-publish``): a document is never dropped, the router parks the refused
    copy and tells its sender (``backbone.router.inbox_full``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_bytes: int = Field(ge=1)
    max_messages: int = Field(ge=1)
    max_age_seconds: int | None = Field(default=None, ge=1)
    overflow: Literal["drop-head", "reject-publish"] = "drop-head"

    def definition(self) -> dict[str, int | str]:
        definition: dict[str, int | str] = {
            "max-length-bytes": self.max_bytes,
            "max-length": self.max_messages,
            "overflow": self.overflow,
        }
        if self.max_age_seconds is not None:
            definition["message-ttl"] = self.max_age_seconds * 1000
        return definition


class BrokerBounds(BaseModel):
    """Every bound ``backbone provision`` applies; the defaults suit a country."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # An adapter uses one connection and two or three channels; room for restarts and a
    # second process. A hub serves many agencies and may run several adapters.
    agency: AccountLimits = AccountLimits(max_connections=10, max_channels=64)
    hub: AccountLimits = AccountLimits(max_connections=32, max_channels=256)
    # A replica uses one connection and seven channels (three, plus four to declare).
    router: AccountLimits = AccountLimits(max_connections=64, max_channels=1024)
    # Records of refused envelopes: ~1 KiB each, small refused envelopes up to the router's
    # quarantine_body_bytes (64 KiB). Kept for operators for 30 days.
    quarantine: QueueBound = QueueBound(
        max_bytes=256 * _MiB, max_messages=100_000, max_age_seconds=30 * _DAY
    )
    # One per connected system; its adapter consumes it. No age limit: an adapter that was
    # down a week still hears what happened, up to the byte and count bound.
    events: QueueBound = QueueBound(max_bytes=16 * _MiB, max_messages=100_000)
    # Every event, for operators to look at; nothing consumes it.
    operators_events: QueueBound = QueueBound(
        max_bytes=64 * _MiB, max_messages=100_000, max_age_seconds=7 * _DAY
    )
    # One per connected system, consumed by its adapter. Sized for the busiest inbox not
    # fetching for a week at the country's scale (docs/operations.md, "A lagging agency"):
    # about 12,600 documents a week reach the busiest system today (540,000 deliveries a
    # month over ~130 connection points, a tenth of them to one), a few hundred KiB each.
    # Past it the broker refuses further copies and the router parks them (inbox_full);
    # the queue never reaches the broker's disk alarm on its own.
    inboxes: QueueBound = QueueBound(
        max_bytes=4 * 1024 * _MiB, max_messages=100_000, overflow="reject-publish"
    )
    # Deliveries of one event before it is dropped (3.x has no default: it would loop).
    events_delivery_limit: int = Field(default=20, ge=1)

    @classmethod
    def load(cls, path: Path | None) -> Self:
        """From a YAML file of these keys (missing keys keep their defaults)."""
        if path is None:
            return cls()
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            return cls.model_validate(values)
        except OSError as error:
            raise ConfigurationError(f"cannot read broker bounds {path}: {error}") from None
        except yaml.YAMLError as error:
            raise ConfigurationError(f"broker bounds {path} is not YAML: {error}") from None
        except ValidationError as error:
            raise ConfigurationError(f"broker bounds {path}: {summarize(error)}") from None
