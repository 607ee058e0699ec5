"""``python -m bench.tracking [--documents N] [--backend sqlite|postgresql ...]``: how fast
tracking answers over a large history, on each store back-end.

A fresh store is filled as the router fills it (``SqlStore.apply`` of routed envelopes, in
group commits) with a country's worth of traffic: documents from agencies of the synthetic
directory to one to three others, each recipient answering with some of 01, 03, 04, 05, 06
(or 02), a third of them with a due date, some already past. Then each question the
tracking API and page ask is timed (median of five): an operator's newest page, a filter by
state, an agency's own list, one recipient's, the overdue list and the overdue overview.
The main benchmark (``python -m bench``) runs this with its counts; alone it prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from backbone.clock import today_in
from backbone.directory import generate_directory
from backbone.envelope import EnvelopeHeader
from backbone.store import SqlStore
from backbone.store.calls import RoutedCall
from backbone.tiers import DEFAULT_PROFILE, TierModel
from backbone.tracking import JourneyFilter, Principal, State, Tracker
from backbone.tracking.wiring import DEFAULT_ZONE
from testkit.store import backend, header

OPERATOR = Principal(operator=True)
_BATCH = 1000  # envelopes per group commit while filling
_REPEAT = 5
_PROGRESS = ("01", "03", "04", "05", "06")


def traffic(documents: int, seed: int = 1) -> tuple[list[tuple[EnvelopeHeader, datetime]], str]:
    """Routed envelopes in time order, and the busiest sender's code."""
    rng = random.Random(seed)  # noqa: S311 - synthetic traffic, not secrets
    codes = [str(agency.organ_code) for agency in generate_directory(0).agencies]
    senders = rng.sample(codes, 300)
    weights = [1 / (rank + 1) for rank in range(len(senders))]  # a few agencies send most
    start = datetime.now(UTC) - timedelta(days=365)
    routed: list[tuple[EnvelopeHeader, datetime]] = []
    today = today_in(ZoneInfo(DEFAULT_ZONE))  # as the tracker reads due dates
    for number in range(documents):
        sender = rng.choices(senders, weights)[0]
        recipients = tuple(rng.sample(codes, rng.randint(1, 3)))
        sent = start + timedelta(seconds=number * 365 * 86_400 / documents)
        due = today + timedelta(days=rng.randint(-60, 60)) if rng.random() < 0.33 else None
        document_id = f"{sender},{sent:%Y/%m/%d},{number}/VP"
        document = header(
            sender=sender,
            recipients=recipients,
            document_id=document_id,
            business_type=0,
            payload=uuid.uuid4().hex,
        ).model_copy(update={"due_date": due})
        routed.append((document, sent))
        for recipient in recipients:
            answers = (
                ["01", "02"]
                if rng.random() < 0.05
                else list(_PROGRESS[: rng.randint(0, len(_PROGRESS))])
            )
            for step, code in enumerate(answers, start=1):
                status = header(
                    sender=recipient,
                    recipients=(sender,),
                    document_id=document_id,
                    status_code=code,
                    payload=uuid.uuid4().hex,
                )
                routed.append((status, sent + timedelta(hours=step)))
    routed.sort(key=lambda pair: pair[1])
    return routed, senders[0]


async def fill(store: SqlStore, routed: list[tuple[EnvelopeHeader, datetime]]) -> float:
    """Record everything as routed; return the envelopes recorded per second."""
    started = time.perf_counter()
    for first in range(0, len(routed), _BATCH):
        await store.apply([RoutedCall(h, at) for h, at in routed[first : first + _BATCH]])
    return len(routed) / (time.perf_counter() - started)


async def timed(question: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    times, answer = [], None
    for _ in range(_REPEAT):
        started = time.perf_counter()
        answer = await question()
        times.append((time.perf_counter() - started) * 1000)
    total = getattr(answer, "total", None)
    return {"median_ms": round(statistics.median(times), 1), "matching": total}


async def measure_backend(
    url: str, schema: str | None, routed: list[tuple[EnvelopeHeader, datetime]], busiest: str
) -> dict[str, Any]:
    store = await SqlStore.open(url, schema=schema)
    try:
        rate = await fill(store, routed)
        tracker = Tracker(store.engine, TierModel.named(DEFAULT_PROFILE))
        some_recipient = routed[0][0].recipients[0]
        questions: dict[str, Callable[[], Awaitable[Any]]] = {
            "operator_newest_page": lambda: tracker.journeys(OPERATOR, JourneyFilter()),
            "operator_state_processing": lambda: tracker.journeys(
                OPERATOR, JourneyFilter(state=State.PROCESSING)
            ),
            "agency_own_list": lambda: tracker.journeys(
                Principal(agencies=(busiest,)), JourneyFilter()
            ),
            "agency_state_routed": lambda: tracker.journeys(
                Principal(agencies=(busiest,)), JourneyFilter(state=State.ROUTED)
            ),
            "recipient_filter": lambda: tracker.journeys(
                OPERATOR, JourneyFilter(recipient=some_recipient)
            ),
            "overdue_list": lambda: tracker.journeys(OPERATOR, JourneyFilter(overdue=True)),
            "overdue_overview": lambda: tracker.overview(OPERATOR),
        }
        answers = {name: await timed(question) for name, question in questions.items()}
        return {"fill_envelopes_per_s": round(rate), "queries": answers}
    finally:
        await store.close()


async def measure_tracking(
    root: Path, documents: int, backends: tuple[str, ...] = ("sqlite", "postgresql")
) -> dict[str, Any]:
    routed, busiest = traffic(documents)
    results: dict[str, Any] = {
        "documents": documents,
        "journeys": sum(len(h.recipients) for h, _ in routed if h.kind == "document"),
        "envelopes": len(routed),
    }
    for name in backends:
        # A fresh SQLite file, or a PostgreSQL schema of its own dropped afterwards.
        async with backend(name, root / "tracking") as where:
            results[name] = await measure_backend(where.url, where.schema, routed, busiest)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tracking", description=__doc__)
    parser.add_argument("--documents", type=int, default=50_000)
    parser.add_argument(
        "--backend", action="append", choices=["sqlite", "postgresql"], dest="backends"
    )
    args = parser.parse_args()
    backends = tuple(args.backends or ("sqlite", "postgresql"))
    with tempfile.TemporaryDirectory(prefix="vdx-bench-tracking-") as tmp:
        results = asyncio.run(measure_tracking(Path(tmp), args.documents, backends))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
