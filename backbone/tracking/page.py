"""The tracking web page: one static HTML file, its script and style sheet (``web/``), served
by the router's HTTP server at ``/track`` (``/`` leads there). No build step; the page calls
the API with the token the user types."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import APIRouter, Response
from fastapi.responses import RedirectResponse

__all__ = ["WEB_DIR", "tracking_page"]

WEB_DIR = Path(__file__).resolve().parent / "web"
# Scripts and styles from this server only, no inline code, no framing.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_FILES = {
    "/track": ("index.html", "text/html; charset=utf-8"),
    "/track/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/track/style.css": ("style.css", "text/css; charset=utf-8"),
}


def tracking_page() -> APIRouter:
    """The page's routes (left out of the OpenAPI description)."""
    router = APIRouter(include_in_schema=False)
    served = {
        path: ((WEB_DIR / name).read_bytes(), media) for path, (name, media) in _FILES.items()
    }

    @router.get("/")
    async def home() -> RedirectResponse:
        return RedirectResponse("/track")

    for path, (content, media) in served.items():
        router.add_api_route(path, _static(content, media), methods=["GET"])
    return router


def _static(content: bytes, media: str) -> Callable[[], Awaitable[Response]]:
    async def serve() -> Response:
        return Response(content, media_type=media, headers=_HEADERS)

    return serve
