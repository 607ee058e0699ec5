"""The gateway's connected software systems, resolved: each secret read (from its file or
environment variable; never from the YAML) and each ``acts_for`` checked against the
agencies the adapter serves (the keys: ``gateway_systems`` in :mod:`adapters.config`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from adapters.config import GatewaySystem
from backbone.errors import ConfigurationError

__all__ = ["ResolvedSystem", "resolve_systems"]


@dataclass(frozen=True, slots=True)
class ResolvedSystem:
    """A system with its secret read and its agencies checked against the adapter's."""

    system_id: str
    secret: bytes = field(repr=False)
    acts_for: frozenset[str]


def resolve_systems(
    systems: tuple[GatewaySystem, ...], served: tuple[str, ...]
) -> Mapping[str, ResolvedSystem]:
    """Read every secret and check every ``acts_for`` code is served by this adapter.
    Raises ConfigurationError naming the key and the fix."""
    if not systems:
        raise ConfigurationError(
            "gateway_port is set but gateway_systems is empty: list the software systems "
            "the gateway serves (systemid, secret_file or secret_env, acts_for)"
        )
    resolved: dict[str, ResolvedSystem] = {}
    for system in systems:
        if system.systemid in resolved:
            raise ConfigurationError(f"gateway_systems: systemid {system.systemid} is listed twice")
        strangers = [code for code in system.acts_for if code not in served]
        if strangers:
            raise ConfigurationError(
                f"gateway_systems: {system.systemid} acts_for {', '.join(strangers)}, which "
                f"this adapter does not serve: add the agency under `agencies` or remove it"
            )
        acts_for = frozenset(system.acts_for or served)
        resolved[system.systemid] = ResolvedSystem(system.systemid, _secret(system), acts_for)
    return resolved


def _secret(system: GatewaySystem) -> bytes:
    if system.secret_env is not None:
        value = os.environ.get(system.secret_env, "")
        where = f"environment variable {system.secret_env}"
    else:
        assert system.secret_file is not None  # the model validator says one is set
        try:
            text = system.secret_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigurationError(
                f"gateway_systems: cannot read the secret of {system.systemid} from "
                f"{system.secret_file} ({getattr(error, 'strerror', None) or error}): fix "
                f"secret_file or the file's permissions"
            ) from None
        value = text.splitlines()[0] if text else ""
        where = f"file {system.secret_file}"
    if not value.strip():
        raise ConfigurationError(
            f"gateway_systems: the secret of {system.systemid} ({where}) is empty: set it"
        )
    return value.strip().encode("utf-8")
