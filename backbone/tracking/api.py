"""The tracking API (``/api/…``): a document's timeline per recipient, a filtered and
paginated list of journeys, the overdue overview. Every call needs a bearer token; an agency
asking for a document it neither sent nor received gets 404, as for one that does not exist,
so the answer tells it nothing."""

# No ``from __future__ import annotations``: FastAPI reads the annotations of the routes
# made in the functions below at run time, and they name local dependencies.
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status

from backbone.tracking.auth import TokenBook
from backbone.tracking.model import (
    DocumentTrack,
    JourneyPage,
    OverdueOverview,
    Principal,
    State,
)
from backbone.tracking.query import MAX_PAGE, MAX_PAGE_SIZE, JourneyFilter, Tracker

__all__ = ["tracking_api"]

_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    status.HTTP_401_UNAUTHORIZED: {"description": "no valid bearer token"}
}


def tracking_api(tracker: Tracker, tokens: TokenBook) -> APIRouter:
    """The API's routes over ``tracker``, authenticated with ``tokens``."""
    router = APIRouter(prefix="/api", tags=["tracking"], responses=_UNAUTHORIZED)
    authenticated = tokens.dependency()

    @router.get("/me", summary="Who the token stands for")
    async def me(asker: Annotated[Principal, Depends(authenticated)]) -> Principal:
        return asker

    @router.get(
        "/documents",
        summary="Journeys (a document to a recipient), newest first",
        responses={status.HTTP_400_BAD_REQUEST: {"description": "page or page_size unusable"}},
    )
    async def documents(
        asker: Annotated[Principal, Depends(authenticated)],
        sender: Annotated[str | None, Query(description="sender's organ code")] = None,
        recipient: Annotated[str | None, Query(description="recipient's organ code")] = None,
        state: Annotated[
            State | None, Query(alias="status", description="where it stands with the recipient")
        ] = None,
        tier: Annotated[str | None, Query(description="the recipient's tier name")] = None,
        since: Annotated[datetime | None, Query(description="routed at or after")] = None,
        until: Annotated[datetime | None, Query(description="routed before")] = None,
        overdue: Annotated[bool | None, Query(description="past due and not finished")] = None,
        # Text, judged by _whole: any unusable value is a 400 that says what to send.
        page: Annotated[str, Query(description=f"a whole number, 1 to {MAX_PAGE}")] = "1",
        page_size: Annotated[
            str, Query(description=f"a whole number, 1 to {MAX_PAGE_SIZE}")
        ] = "50",
    ) -> JourneyPage:
        number = _whole("page", page, MAX_PAGE)
        size = _whole("page_size", page_size, MAX_PAGE_SIZE)
        where = JourneyFilter(
            sender=sender,
            recipient=recipient,
            state=state,
            tier=tier,
            since=_aware(since),
            until=_aware(until),
            overdue=overdue,
        )
        try:
            return await tracker.journeys(asker, where, page=number, page_size=size)
        except ValueError as error:  # an unknown tier
            raise HTTPException(422, str(error)) from None

    @router.get(
        "/documents/{document_id:path}",
        summary="A document's timeline per recipient",
        responses={status.HTTP_404_NOT_FOUND: {"description": "unknown, or not yours"}},
    )
    async def document(
        document_id: str, asker: Annotated[Principal, Depends(authenticated)]
    ) -> DocumentTrack:
        track = await tracker.document(asker, document_id)
        if track is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such document")
        return track

    @router.get("/overdue", summary="Overdue journeys per tier and late agency")
    async def overdue_overview(
        asker: Annotated[Principal, Depends(authenticated)],
    ) -> OverdueOverview:
        return await tracker.overview(asker)

    return router


def _whole(name: str, text: str, most: int) -> int:
    """``text`` as a whole number from 1 to ``most``, else a 400 naming the parameter (the
    value is not echoed back)."""
    # Length first: int() of thousands of digits is slow, and the value is out of range.
    if text.isascii() and text.isdigit() and len(text) <= len(str(most)) and 1 <= int(text) <= most:
        return int(text)
    raise HTTPException(
        status.HTTP_400_BAD_REQUEST, f"{name} must be a whole number from 1 to {most}"
    )


def _aware(moment: datetime | None) -> datetime | None:
    """Times without an offset are UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
