"""The demo world: who takes part, their keys, the directory, broker accounts and the
configuration files the router and adapters are started with. ``backbone sandbox`` builds
its world here too, with agencies of its own.

Everything lives in one temporary folder and under one fresh broker name prefix, so a demo
on a shared broker touches nothing of anybody else's.
"""

from __future__ import annotations

import secrets
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from backbone.broker.provision import AccountSpec, plan_accounts
from backbone.devtools.ca import DevCA
from backbone.directory import DirectoryBuilder, dump_directory
from backbone.directory.index import Directory
from backbone.wire.names import Names

__all__ = [
    "AGENCIES",
    "HUB",
    "NAMES",
    "TAY_NINH_HUB",
    "Agency",
    "DemoWorld",
    "Hub",
    "build_world",
    "free_port",
]

HUB = "00.53.W00"  # Tây Ninh's provincial integration platform (LGSP)


@dataclass(frozen=True, slots=True)
class Hub:
    """A hub and the subtrees (organ codes) it serves."""

    id: str
    serves: tuple[str, ...]
    name: str


TAY_NINH_HUB = Hub(HUB, ("000.00.00.H53",), "Nền tảng tích hợp tỉnh Tây Ninh")


@dataclass(frozen=True, slots=True)
class Agency:
    code: str
    name: str
    hub: str | None = None  # None: connected directly with its own adapter


AGENCIES = (
    Agency("000.00.00.G22", "Văn phòng Chính phủ"),
    Agency("000.00.00.G04", "Bộ Nội vụ"),
    Agency("000.00.00.H41", "UBND tỉnh Nghệ An"),
    Agency("000.00.00.H53", "UBND tỉnh Tây Ninh", HUB),
    Agency("000.00.32.H53", "UBND huyện Tân Biên", HUB),
    Agency("000.21.32.H53", "UBND xã Tân Bình", HUB),
    Agency("001.21.32.H53", "Trường Tiểu học Tân Bình", HUB),
)
NAMES = {agency.code: agency.name for agency in AGENCIES}


@dataclass
class DemoWorld:
    """Where everything of one demo run is: folders, files, names, broker accounts."""

    root: Path
    amqp_url: str  # the broker as discovered (an administrator's URL)
    names: Names
    directory: Directory
    directory_file: Path
    ca: DevCA
    accounts: list[AccountSpec]
    passwords: dict[str, str] = field(repr=False)
    router_port: int
    agencies: tuple[Agency, ...] = AGENCIES

    @property
    def prefix(self) -> str:
        return self.names.prefix

    @property
    def router_user(self) -> str:
        return f"{self.prefix}-router"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.router_port}/metrics"

    def folder(self, code: str) -> Path:
        """The drop folder of an agency (outbox/ sent/ failed/ inbox/ status/)."""
        return self.root / "folders" / code

    def system_of(self, code: str) -> str:
        return self.directory.serving_system(code).system_id

    def systems(self) -> list[str]:
        """Every connected system: the direct agencies and the hub, one adapter each."""
        return list(dict.fromkeys(self.system_of(agency.code) for agency in self.agencies))

    def served_by(self, system: str) -> list[Agency]:
        """The agencies ``system``'s adapter acts for."""
        return [a for a in self.agencies if self.system_of(a.code) == system]

    def url_for(self, user: str) -> str:
        """The broker URL logging in as ``user``."""
        parts = urlsplit(self.amqp_url)
        host = parts.hostname or "127.0.0.1"
        netloc = f"{user}:{self.passwords[user]}@{host}:{parts.port or 5672}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    def router_config(self, **extra: Any) -> Path:
        """The router's settings file; ``extra`` keys (tracking tokens…) added to it."""
        return self._write_config(
            "router.yaml",
            {
                "amqp_url": self.url_for(self.router_user),
                "directory": str(self.directory_file),
                "trust_anchors": [str(self.ca.cert_path)],
                "crls": [str(self.ca.crl_path)],
                "store_url": f"sqlite+aiosqlite:///{self.root / 'router.db'}",
                "prefix": self.prefix,
                "http_port": self.router_port,
                **extra,
            },
        )

    def adapter_config(
        self, system: str, gateway: dict[str, Any] | None = None, *, http_port: int | None = None
    ) -> Path:
        """``system``'s adapter settings file: each agency with its drop folder, or, given
        ``gateway`` (the ``gateway_*`` keys), none: it serves them through the gateway.
        ``http_port``: where it serves /metrics (for Prometheus, ``demo --observe``)."""
        served = [a.code for a in self.served_by(system)]
        account = next(spec.user for spec in self.accounts if spec.system == system)
        return self._write_config(
            f"adapter-{system}.yaml",
            {
                "amqp_url": self.url_for(account),
                "system": system,
                "prefix": self.prefix,
                "directory": str(self.directory_file),
                "trust_anchors": [str(self.ca.cert_path)],
                "crls": [str(self.ca.crl_path)],
                "reconnect_interval": 0.5,
                "http_port": http_port,
                "agencies": [self._served(code, folder=gateway is None) for code in served],
                **(gateway or {}),
            },
        )

    def _served(self, code: str, *, folder: bool) -> dict[str, str]:
        issued = self.ca.issued(code)
        served = {
            "organ_code": code,
            "key": str(issued.key_path),
            "certificate": str(issued.cert_path),
        }
        if folder:
            served["folder"] = str(self.folder(code))
        return served

    def _write_config(self, name: str, values: dict[str, Any]) -> Path:
        path = self.root / name
        path.touch(mode=0o600)
        path.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
        return path


def build_world(
    root: Path,
    amqp_url: str,
    *,
    agencies: tuple[Agency, ...] = AGENCIES,
    hub: Hub = TAY_NINH_HUB,
    label: str = "demo",
) -> DemoWorld:
    """A development CA with a key per agency, the directory (``agencies``, some through
    ``hub``) and a least-privilege account plan, all under a fresh prefix ``label-…``."""
    prefix = f"{label}-{uuid.uuid4().hex[:8]}"
    ca = DevCA.init(root / "pki")
    builder = DirectoryBuilder().hub(
        hub.id, *hub.serves, name=hub.name, broker_account=f"{prefix}-hub"
    )
    for agency in agencies:
        certificate = str(ca.issue(agency.code, name=agency.name).cert_path)
        if agency.hub is None:
            builder.direct(
                agency.code,
                name=agency.name,
                certificate=certificate,
                broker_account=f"{prefix}-agency-{agency.code}",
            )
        else:
            builder.via_hub(agency.code, agency.hub, name=agency.name, certificate=certificate)
    directory = builder.build()
    directory_file = root / "directory.yaml"
    dump_directory(directory.file, directory_file)
    names = Names(prefix)
    accounts = plan_accounts(directory, names, router_user=f"{prefix}-router")
    return DemoWorld(
        root=root,
        amqp_url=amqp_url,
        names=names,
        directory=directory,
        directory_file=directory_file,
        ca=ca,
        accounts=accounts,
        passwords={spec.user: secrets.token_urlsafe(24) for spec in accounts},
        router_port=free_port(),
        agencies=agencies,
    )


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
