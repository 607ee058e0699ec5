"""The HTTP side of a backbone process: ``/metrics``, ``/healthz`` (alive), ``/readyz``.

Readiness is a list of named checks (broker connected, store reachable, …); each returns
``None`` when fine or a sentence saying what is wrong. A check that raises is answered with
its name and the kind of error only: an exception's text may carry a URL, user, host or
database name, which go to the log, never to the unauthenticated answer. The app runs on
uvicorn inside the process's own event loop, so checks see the live connection objects.

The server listens on loopback unless configured otherwise (``http_host``): ``/metrics``
and ``/readyz`` need no token, so exposing them is an operator's explicit choice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import structlog
import uvicorn
from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from backbone.observability.listen import LOOPBACK

# What uvicorn serves: FastAPI, Starlette, or any ASGI callable.
ASGIApplication = Callable[..., Awaitable[Any]]

__all__ = ["Check", "HttpServer", "make_app"]

log = structlog.get_logger(__name__)

Check = Callable[[], Awaitable[str | None]]


def make_app(
    checks: Mapping[str, Check], *, title: str, routers: Sequence[APIRouter] = ()
) -> FastAPI:
    """The app; ``routers`` add what else the process serves (the router's tracking API)."""
    app = FastAPI(title=title, docs_url=None, redoc_url=None)
    for router in routers:
        app.include_router(router)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        problems: dict[str, str] = {}
        for name, check in checks.items():
            try:
                problem = await asyncio.wait_for(check(), timeout=5)
            except Exception as error:  # a check that fails is itself the answer
                log.warning("http.readiness_check_failed", check=name, error=str(error))
                problem = f"not ready: the check failed ({type(error).__name__})"
            if problem is not None:
                problems[name] = problem
        ready = not problems
        return JSONResponse(
            {"ready": ready, "checks": {name: problems.get(name, "ok") for name in checks}},
            status_code=200 if ready else 503,
        )

    return app


class HttpServer:
    """uvicorn serving ``app`` (any ASGI application) on ``host:port`` as a task of the
    running loop; over TLS when given a certificate (PEM chain) and its key."""

    def __init__(
        self,
        app: ASGIApplication,
        *,
        host: str = LOOPBACK,
        port: int,
        tls_certificate: Path | None = None,
        tls_key: Path | None = None,
    ) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            ssl_certfile=tls_certificate,
            ssl_keyfile=tls_key,
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises why it could not start (port taken…)
            await asyncio.sleep(0.02)

    @property
    def started(self) -> bool:
        return bool(self._server.started)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The (host, port) pairs it listens on, once started."""
        return [
            cast("tuple[str, int]", socket.getsockname()[:2])
            for server in self._server.servers
            for socket in server.sockets
        ]

    async def stop(self) -> None:
        if self._task is not None:
            self._server.should_exit = True
            await self._task
