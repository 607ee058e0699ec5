"""The sandbox's agencies, and what an integration team is given for each: the gateway's
endpoint, a ``systemid`` and its secret, a tracking token; written to ``sandbox.json`` and
shown as a table.

Five agencies across the four QCVN 102 levels; the two lowest are connected through Tây
Ninh's provincial platform, whose gateway serves them under one ``systemid``, the others
each have a gateway of their own.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from backbone.devtools.demo.world import HUB, Agency, DemoWorld, Hub, free_port
from backbone.tracking.auth import hash_token, mint_token

__all__ = ["AGENCIES", "SANDBOX_HUB", "Entry", "Gateway", "Sandbox", "plan_sandbox", "table"]

SANDBOX_HUB = Hub(HUB, ("000.21.32.H53",), "Nền tảng tích hợp tỉnh Tây Ninh")
AGENCIES = (
    Agency("000.00.00.G22", "Văn phòng Chính phủ"),
    Agency("000.00.00.H53", "UBND tỉnh Tây Ninh"),
    Agency("000.00.32.H53", "UBND huyện Tân Biên"),
    Agency("000.21.32.H53", "UBND xã Tân Bình", HUB),
    Agency("001.21.32.H53", "Trường Tiểu học Tân Bình", HUB),
)
FILE_NAME = "sandbox.json"


@dataclass(frozen=True, slots=True)
class Gateway:
    """One connected system's gateway: where it listens and the one software system
    (``systemid``) it knows, acting for every agency the system serves."""

    system: str  # the connected system: a direct agency's organ code, or the hub's id
    systemid: str
    secret: str
    secret_file: Path
    port: int
    acts_for: tuple[str, ...]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True, slots=True)
class Entry:
    """One agency as ``sandbox.json`` lists it."""

    organ_code: str
    name: str
    tier: int
    connection: str  # "direct" or "via hub <id>"
    endpoint: str
    systemid: str
    secret: str
    tracking_token: str  # bearer token of the tracking API, acting for this agency


@dataclass
class Sandbox:
    world: DemoWorld
    out: Path
    gateways: dict[str, Gateway]  # by connected system
    tracking_tokens: dict[str, str]  # organ code → token

    @property
    def tracking_url(self) -> str:
        return f"http://127.0.0.1:{self.world.router_port}/track"

    @property
    def file(self) -> Path:
        return self.out / FILE_NAME

    def router_config(self) -> Path:
        tokens = {hash_token(token): code for code, token in self.tracking_tokens.items()}
        return self.world.router_config(tracking_tokens=tokens)

    def adapter_config(self, system: str) -> Path:
        gateway = self.gateways[system]
        keys: dict[str, Any] = {
            "gateway_port": gateway.port,
            "gateway_state": str(self.world.root / f"gateway-{system}"),
            "gateway_systems": [
                {
                    "systemid": gateway.systemid,
                    "secret_file": str(gateway.secret_file),
                    "acts_for": list(gateway.acts_for),
                }
            ],
        }
        return self.world.adapter_config(system, gateway=keys)

    def entries(self) -> list[Entry]:
        entries = []
        for agency in self.world.agencies:
            gateway = self.gateways[self.world.system_of(agency.code)]
            entries.append(
                Entry(
                    organ_code=agency.code,
                    name=agency.name,
                    tier=self.world.directory.tier_of(agency.code).number,
                    connection=f"via hub {agency.hub}" if agency.hub else "direct",
                    endpoint=gateway.endpoint,
                    systemid=gateway.systemid,
                    secret=gateway.secret,
                    tracking_token=self.tracking_tokens[agency.code],
                )
            )
        return entries

    def document(self) -> dict[str, Any]:
        return {
            "agencies": [asdict(entry) for entry in self.entries()],
            "tracking": self.tracking_url,
        }

    def write(self) -> Path:
        """``sandbox.json``, readable by its owner only (it holds the secrets), written
        under another name and renamed: whoever waits for it reads it whole."""
        partial = self.out / f".{FILE_NAME}.tmp"
        _write_private(partial, json.dumps(self.document(), ensure_ascii=False, indent=2) + "\n")
        os.replace(partial, self.file)
        return self.file

    def remove_files(self) -> None:
        """What the sandbox wrote into ``out``: the secrets and ``sandbox.json`` describe
        gateways that are gone."""
        for path in [self.file, *(gateway.secret_file for gateway in self.gateways.values())]:
            path.unlink(missing_ok=True)


def plan_sandbox(world: DemoWorld, out: Path) -> Sandbox:
    """A gateway per connected system on a free loopback port, each with a generated
    ``systemid`` and secret (its file in ``out``, mode 0600), and a tracking token per
    agency."""
    out.mkdir(parents=True, exist_ok=True)
    gateways = {}
    for system in world.systems():
        systemid = f"sandbox-{system}-{secrets.token_hex(3)}"
        secret = secrets.token_hex(16)
        secret_file = out / f"{systemid}.secret"
        _write_private(secret_file, secret + "\n")
        acts_for = tuple(agency.code for agency in world.served_by(system))
        gateways[system] = Gateway(system, systemid, secret, secret_file, free_port(), acts_for)
    tokens = {agency.code: mint_token()[0] for agency in world.agencies}
    return Sandbox(world, out, gateways, tokens)


def _write_private(path: Path, text: str) -> None:
    path.unlink(missing_ok=True)  # a file left by an earlier run may be anybody's mode
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)


def table(sandbox: Sandbox) -> list[str]:
    """``sandbox.json`` as aligned lines: one row per agency, then the tracking URL."""
    header = ("organ code", "tier", "name", "connection", "endpoint", "systemid", "secret")
    rows = [header] + [
        (e.organ_code, str(e.tier), e.name, e.connection, e.endpoint, e.systemid, e.secret)
        for e in sandbox.entries()
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append("")
    lines.append(f"tracking: {sandbox.tracking_url} (the API: /api on the same host)")
    lines.append("tracking tokens (Authorization: Bearer …), one per agency:")
    lines += [f"  {e.organ_code}  {e.tracking_token}" for e in sandbox.entries()]
    return lines
