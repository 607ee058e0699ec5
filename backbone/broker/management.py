"""A small typed client for the RabbitMQ management HTTP API (users, permissions, queues).

Tests use it to give each agency its own broker user (so the ``user_id`` property is
checked by the broker) and to clean up what they declared; provisioning will use it too.
Standard library only: ``urllib.request`` run in a thread, so it never blocks the loop.

The base URL comes from ``VDX_MANAGEMENT_URL`` (credentials may ride in it,
``http://admin:secret@host:15672``), else ``http://127.0.0.1:15672`` as guest/guest.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from backbone.errors import BrokerUnavailableError

__all__ = ["DEFAULT_MANAGEMENT_URL", "ENV_VAR", "ManagementClient", "QueueBinding"]

DEFAULT_MANAGEMENT_URL = "http://127.0.0.1:15672"
ENV_VAR = "VDX_MANAGEMENT_URL"
_HOW_TO_ENABLE = (
    "enable it with `rabbitmq-plugins enable rabbitmq_management` on the broker node "
    "(or `backbone broker ensure --plugins` for the local one), or set "
    f"{ENV_VAR}=http://user:password@host:15672 to where it listens"
)
_PARALLEL_DELETES = 8


class _NotFoundError(Exception):
    """HTTP 404: the user, queue or exchange does not exist (callers decide what it means)."""


@dataclass(frozen=True, slots=True)
class QueueBinding:
    """A binding of a queue: messages from exchange ``source`` with ``routing_key``."""

    source: str
    routing_key: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ManagementClient:
    base_url: str = DEFAULT_MANAGEMENT_URL
    username: str = "guest"
    password: str = field(default="guest", repr=False)
    vhost: str = "/"
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if urlsplit(self.base_url).scheme not in ("http", "https"):
            raise ValueError(f"management URL must be http(s)://…; got {self.base_url!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ManagementClient:
        """From ``VDX_MANAGEMENT_URL`` (user and password taken out of the URL), else the
        local node as guest/guest."""
        parts = urlsplit(environ.get(ENV_VAR) or DEFAULT_MANAGEMENT_URL)
        host = parts.hostname or "127.0.0.1"
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
        base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        if parts.username is None:
            return cls(base)
        return cls(base, unquote(parts.username), unquote(parts.password or ""))

    # -- users and permissions -------------------------------------------------------------

    async def create_user(self, name: str, password: str) -> None:
        """Create ``name`` (or reset its password) with no tags: it may use AMQP, not the
        management UI."""
        await self._call("PUT", f"/api/users/{_q(name)}", {"password": password, "tags": ""})

    async def delete_user(self, name: str) -> bool:
        """Delete ``name``; False when there was no such user."""
        return await self._delete(f"/api/users/{_q(name)}")

    async def user_names(self) -> set[str]:
        rows = await self._call("GET", "/api/users?columns=name")
        return {row["name"] for row in rows}

    async def permissions_of(self, user: str, *, vhost: str | None = None) -> tuple[str, ...]:
        """``user``'s (configure, write, read) regexes on the vhost; empty when it has none."""
        try:
            row = await self._call("GET", f"/api/permissions/{self._v(vhost)}/{_q(user)}")
        except _NotFoundError:
            return ()
        return (row["configure"], row["write"], row["read"])

    async def readers_of(self, read: str, *, vhost: str | None = None) -> list[str]:
        """The users whose read permission on the vhost is exactly the regex ``read``."""
        rows = await self._call("GET", f"/api/vhosts/{self._v(vhost)}/permissions")
        return sorted(row["user"] for row in rows if row["read"] == read)

    async def set_permissions(
        self, user: str, *, configure: str, write: str, read: str, vhost: str | None = None
    ) -> None:
        """Grant ``user`` the three regexes (resource names) on the vhost; ``"^$"`` is none."""
        body = {"configure": configure, "write": write, "read": read}
        await self._call("PUT", f"/api/permissions/{self._v(vhost)}/{_q(user)}", body)

    async def set_user_limits(self, user: str, limits: Mapping[str, int]) -> None:
        """Set ``user``'s limits (``max-connections``, ``max-channels``): the broker refuses
        a connection or channel beyond them."""
        for name, value in limits.items():
            await self._call("PUT", f"/api/user-limits/{_q(user)}/{_q(name)}", {"value": value})

    async def user_limits(self, user: str) -> dict[str, int]:
        """``user``'s limits as the broker holds them (empty when none)."""
        rows = await self._call("GET", f"/api/user-limits/{_q(user)}")
        return {str(k): int(v) for row in rows or () for k, v in row["value"].items()}

    async def set_policy(
        self,
        name: str,
        *,
        pattern: str,
        definition: Mapping[str, Any],
        apply_to: str = "queues",
        priority: int = 0,
        vhost: str | None = None,
    ) -> None:
        """Create or replace a policy (``apply_to``: queues, exchanges or all)."""
        body = {
            "pattern": pattern,
            "definition": dict(definition),
            "apply-to": apply_to,
            "priority": priority,
        }
        await self._call("PUT", f"/api/policies/{self._v(vhost)}/{_q(name)}", body)

    async def policy(self, name: str, *, vhost: str | None = None) -> dict[str, Any] | None:
        """The policy as the broker has it; None when there is no such policy."""
        try:
            found: dict[str, Any] = await self._call(
                "GET", f"/api/policies/{self._v(vhost)}/{_q(name)}"
            )
        except _NotFoundError:
            return None
        return found

    async def delete_policy(self, name: str, *, vhost: str | None = None) -> bool:
        return await self._delete(f"/api/policies/{self._v(vhost)}/{_q(name)}")

    # -- queues, exchanges, bindings -------------------------------------------------------

    async def queue_depths(self, *, prefix: str = "", vhost: str | None = None) -> dict[str, int]:
        """Messages (ready and unacknowledged) per queue whose name starts with ``prefix``.

        The API's counts are statistics sampled every few seconds (``collect_statistics_
        interval``, 5 s by default): they lag what was just published."""
        rows = await self._call("GET", f"/api/queues/{self._v(vhost)}?columns=name,messages")
        return {
            row["name"]: int(row.get("messages") or 0)
            for row in rows
            if row["name"].startswith(prefix)
        }

    async def queue_message_count(self, queue: str, *, vhost: str | None = None) -> int | None:
        """The queue's message count (sampled, as in :meth:`queue_depths`); None when there
        is no such queue."""
        try:
            row = await self._call("GET", f"/api/queues/{self._v(vhost)}/{_q(queue)}")
        except _NotFoundError:
            return None
        return int(row.get("messages") or 0)

    async def queue_policy(
        self, queue: str, *, vhost: str | None = None
    ) -> tuple[str | None, dict[str, Any]]:
        """The policy applied to ``queue`` and its effective definition, as the broker
        reports them (sampled statistics: a fresh queue may show none for a few seconds).
        Raises :class:`LookupError` when there is no such queue."""
        try:
            row = await self._call("GET", f"/api/queues/{self._v(vhost)}/{_q(queue)}")
        except _NotFoundError:
            raise LookupError(f"queue {queue!r} does not exist") from None
        return row.get("policy"), dict(row.get("effective_policy_definition") or {})

    async def queue_arguments(self, queue: str, *, vhost: str | None = None) -> dict[str, Any]:
        """The arguments ``queue`` was declared with (``x-delivery-limit``, …). Raises
        :class:`LookupError` when there is no such queue."""
        try:
            row = await self._call("GET", f"/api/queues/{self._v(vhost)}/{_q(queue)}")
        except _NotFoundError:
            raise LookupError(f"queue {queue!r} does not exist") from None
        return dict(row.get("arguments") or {})

    async def queue_consumers(self, queue: str, *, vhost: str | None = None) -> int:
        """How many consumers the queue has now (0 when there is no such queue)."""
        try:
            row = await self._call("GET", f"/api/queues/{self._v(vhost)}/{_q(queue)}")
        except _NotFoundError:
            return 0
        return int(row.get("consumers") or 0)

    async def queue_bindings(self, queue: str, *, vhost: str | None = None) -> list[QueueBinding]:
        """The queue's bindings, without the implicit one every queue has to the default
        exchange. Raises :class:`LookupError` when there is no such queue."""
        path = f"/api/queues/{self._v(vhost)}/{_q(queue)}"
        try:
            # The bindings resource answers even for a queue that does not exist.
            await self._call("GET", f"{path}?columns=name")
        except _NotFoundError:
            raise LookupError(f"queue {queue!r} does not exist") from None
        rows = await self._call("GET", f"{path}/bindings")
        return [
            QueueBinding(row["source"], row["routing_key"], row.get("arguments") or {})
            for row in rows
            if row["source"] != ""
        ]

    async def bindings_to_queues(
        self, *, prefix: str = "", vhost: str | None = None
    ) -> list[tuple[str, str, str]]:
        """(exchange, queue, routing key) of every binding to a queue whose name starts with
        ``prefix``, in one call (not the implicit default-exchange ones)."""
        rows = await self._call("GET", f"/api/bindings/{self._v(vhost)}")
        return [
            (row["source"], row["destination"], row["routing_key"])
            for row in rows
            if row["destination_type"] == "queue"
            and row["source"] != ""
            and row["destination"].startswith(prefix)
        ]

    async def queue_names(self, *, prefix: str = "", vhost: str | None = None) -> list[str]:
        rows = await self._call("GET", f"/api/queues/{self._v(vhost)}?columns=name")
        return sorted(row["name"] for row in rows if row["name"].startswith(prefix))

    async def exchange_names(self, *, prefix: str = "", vhost: str | None = None) -> list[str]:
        rows = await self._call("GET", f"/api/exchanges/{self._v(vhost)}?columns=name")
        return sorted(row["name"] for row in rows if row["name"].startswith(prefix))

    async def delete_queue(self, name: str, *, vhost: str | None = None) -> bool:
        """Delete a queue and its messages; False when there was no such queue."""
        return await self._delete(f"/api/queues/{self._v(vhost)}/{_q(name)}")

    async def delete_exchange(self, name: str, *, vhost: str | None = None) -> bool:
        return await self._delete(f"/api/exchanges/{self._v(vhost)}/{_q(name)}")

    async def delete_prefixed(self, prefix: str, *, vhost: str | None = None) -> int:
        """Delete every queue and exchange named ``<prefix>.…`` (a test's or a trial
        deployment's whole topology); returns how many were deleted."""
        if not prefix or prefix.endswith(".") or prefix == "amq":
            raise ValueError(f"refusing to delete by prefix {prefix!r}: name one deployment")
        start = f"{prefix}."
        v = self._v(vhost)
        queues = await self.queue_names(prefix=start, vhost=vhost)
        exchanges = await self.exchange_names(prefix=start, vhost=vhost)
        deleted = await self._delete_all([f"/api/queues/{v}/{_q(name)}" for name in queues])
        deleted += await self._delete_all([f"/api/exchanges/{v}/{_q(name)}" for name in exchanges])
        return deleted

    async def nodes(self) -> list[dict[str, Any]]:
        """Each node's resource alarms and use: ``name``, ``mem_alarm``, ``disk_free_alarm``
        (true while the broker blocks publishers), ``mem_used``, ``mem_limit``,
        ``disk_free``, ``disk_free_limit``."""
        columns = "name,mem_alarm,disk_free_alarm,mem_used,mem_limit,disk_free,disk_free_limit"
        rows: list[dict[str, Any]] = await self._call("GET", f"/api/nodes?columns={columns}")
        return rows

    async def version(self) -> str:
        """The broker's RabbitMQ version (also a cheap reachability check)."""
        overview = await self._call("GET", "/api/overview")
        return str(overview["rabbitmq_version"])

    # -- HTTP ------------------------------------------------------------------------------

    async def _delete_all(self, paths: list[str]) -> int:
        # A few at a time: a country's topology is ~600 queues, the API serves a few well.
        done = 0
        for start in range(0, len(paths), _PARALLEL_DELETES):
            chunk = paths[start : start + _PARALLEL_DELETES]
            done += sum(await asyncio.gather(*(self._delete(path) for path in chunk)))
        return done

    def _v(self, vhost: str | None) -> str:
        return _q(self.vhost if vhost is None else vhost)

    async def _delete(self, path: str) -> bool:
        try:
            await self._call("DELETE", path)
        except _NotFoundError:
            return False
        return True

    async def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        retries = _GET_RETRIES if method == "GET" else 0
        for attempt in range(retries):
            try:
                return await asyncio.to_thread(self._request, method, path, body)
            except _ServerError:
                await asyncio.sleep(0.5 * (attempt + 1))
        return await asyncio.to_thread(self._request, method, path, body)

    def _request(self, method: str, path: str, body: Mapping[str, Any] | None) -> Any:
        credentials = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __post_init__
            self.base_url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Basic {credentials}", "Content-Type": "application/json"},
        )
        where = f"the RabbitMQ management API at {self.base_url}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310
                payload = answer.read()
        except urllib.error.HTTPError as error:
            detail = _detail(error)
            if error.code == 404:
                raise _NotFoundError(detail) from None
            if error.code == 401:
                raise BrokerUnavailableError(
                    f"{where} refused user {self.username!r} (HTTP 401: wrong password, or a "
                    "user without the management or administrator tag); give credentials in "
                    f"{ENV_VAR}=http://user:password@host:15672"
                ) from None
            failure = _ServerError if error.code >= 500 else BrokerUnavailableError
            raise failure(
                f"{where} answered {method} {path} with HTTP {error.code}: {detail}"
            ) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise BrokerUnavailableError(
                f"{where} is unreachable ({reason}); {_HOW_TO_ENABLE}"
            ) from None
        return json.loads(payload) if payload else None


# A listing can meet a queue deleted while it is read, which RabbitMQ's management API
# answers with HTTP 500 (seen under load): a GET changes nothing, so it is asked again.
_GET_RETRIES = 3


class _ServerError(BrokerUnavailableError):
    """The management API failed on its side (HTTP 5xx)."""


def _q(segment: str) -> str:
    """One URL path segment: the default vhost ``/`` is ``%2F``, names may hold dots."""
    return quote(segment, safe="")


def _detail(error: urllib.error.HTTPError) -> str:
    try:
        answer = json.loads(error.read() or b"{}")
    except (ValueError, OSError):
        return error.reason
    return str(answer.get("reason") or answer.get("error") or error.reason)
