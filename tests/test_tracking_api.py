"""The tracking API over HTTP (in process, ASGI) on the real store back-ends: tokens, who
sees what, filters and pages; the published OpenAPI description; tokens in the settings;
the ``backbone track`` command."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from structlog.testing import capture_logs
from typer.testing import CliRunner, Result

from backbone.cli import app as cli
from backbone.observability.http import make_app
from backbone.replica import Settings
from backbone.tracking import (
    OPERATOR,
    Principal,
    TokenBook,
    Tracking,
    TrackingOptions,
    hash_token,
)
from backbone.tracking.openapi import OPENAPI_PATH, openapi_json, router_openapi
from tests.support.tracking_fixtures import (
    BACKENDS,
    G01,
    G22,
    H41,
    H53_DISTRICT,
    TIERS,
    TODAY,
    Ledger,
    Tokens,
    fixed_clock,
    tracked_store,
)

pytestmark = pytest.mark.clock  # scripts/clock-check runs it at fixed instants


@dataclass
class Api:
    http: httpx.AsyncClient
    ledger: Ledger
    tokens: Tokens


@pytest.fixture(params=BACKENDS)
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    tokens = Tokens.for_holders([G22, H41, G01, OPERATOR])
    async with tracked_store(request.param, tmp_path) as (ledger, _):
        tracking = Tracking.for_store(
            ledger.store, TIERS, TrackingOptions(tokens=tokens.hashes, clock=fixed_clock)
        )
        assert tracking is not None
        app = make_app({}, title="vdx router", routers=tracking.routers())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://router") as http:
            yield Api(http, ledger, tokens)


def _path(document_id: str) -> str:
    return f"/api/documents/{quote(document_id, safe='')}"


@pytest.mark.parametrize(
    ("query", "complaint"),
    [
        ({"page": 10**30}, "page must be a whole number from 1 to 100000"),
        ({"page": 100_001}, "page must be a whole number from 1 to 100000"),
        ({"page": "9" * 5000}, "page must be a whole number from 1 to 100000"),
        ({"page": -1}, "page must be a whole number from 1 to 100000"),
        ({"page": 0}, "page must be a whole number from 1 to 100000"),
        ({"page": "two"}, "page must be a whole number from 1 to 100000"),
        ({"page": "1.5"}, "page must be a whole number from 1 to 100000"),
        ({"page": "\u0661"}, "page must be a whole number from 1 to 100000"),  # Arabic 1
        ({"page_size": 201}, "page_size must be a whole number from 1 to 200"),
        ({"page_size": -5}, "page_size must be a whole number from 1 to 200"),
        ({"page_size": ""}, "page_size must be a whole number from 1 to 200"),
    ],
)
async def test_unusable_paging_is_a_400_that_says_what_to_send(
    api: Api, query: dict[str, object], complaint: str
) -> None:
    answer = await api.http.get("/api/documents", params=query, headers=api.tokens.auth(G22))
    assert (answer.status_code, answer.json()) == (400, {"detail": complaint})


async def test_the_last_allowed_page_is_served_empty(api: Api) -> None:
    await api.ledger.send(G22, (H41,), 1)
    answer = await api.http.get(
        "/api/documents", params={"page": 100_000, "page_size": 200}, headers=api.tokens.auth(G22)
    )
    assert answer.status_code == 200
    assert (answer.json()["total"], answer.json()["items"]) == (1, [])


async def test_every_call_needs_a_known_bearer_token(api: Api) -> None:
    sent = await api.ledger.send(G22, (H41,), 1)
    for path in ("/api/me", "/api/documents", _path(sent.document_id), "/api/overdue"):
        missing = await api.http.get(path)
        assert missing.status_code == 401, path
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = await api.http.get(path, headers={"Authorization": "Bearer not-a-token"})
        assert wrong.status_code == 401, path
    me = await api.http.get("/api/me", headers=api.tokens.auth(G22))
    assert me.json() == {"operator": False, "agencies": [G22]}
    operator = await api.http.get("/api/me", headers=api.tokens.auth(OPERATOR))
    assert operator.json() == {"operator": True, "agencies": []}


async def test_another_agencys_document_is_not_found_and_an_operator_sees_it(api: Api) -> None:
    sent = await api.ledger.send(G22, (H41, H53_DISTRICT), 2)
    await api.ledger.status(H41, G22, sent.document_id, "02", "Không đúng thẩm quyền")

    refused = await api.http.get(_path(sent.document_id), headers=api.tokens.auth(G01))
    unknown = await api.http.get(_path(f"{G22},2026/11/02,404/VP"), headers=api.tokens.auth(G01))
    assert refused.status_code == unknown.status_code == 404
    assert refused.json() == unknown.json()  # existence does not leak

    operator = await api.http.get(_path(sent.document_id), headers=api.tokens.auth(OPERATOR))
    sender = await api.http.get(_path(sent.document_id), headers=api.tokens.auth(G22))
    recipient = await api.http.get(_path(sent.document_id), headers=api.tokens.auth(H41))
    assert operator.status_code == sender.status_code == recipient.status_code == 200
    assert operator.json() == sender.json()
    assert [r["journey"]["recipient"] for r in operator.json()["recipients"]] == [
        H41,
        H53_DISTRICT,
    ]
    [own] = recipient.json()["recipients"]
    assert own["journey"]["recipient"] == H41
    assert own["journey"]["state"] == "rejected"
    assert own["steps"][-1]["note"] == "Không đúng thẩm quyền"

    listed = await api.http.get("/api/documents", headers=api.tokens.auth(G01))
    assert listed.json()["total"] == 0


async def test_the_list_filters_and_pages(api: Api) -> None:
    for number in range(1, 6):
        await api.ledger.send(G22, (H41, H53_DISTRICT), number, due=TODAY - timedelta(1))
    await api.ledger.status(H41, G22, api.ledger.document_id(G22, 1), "06")
    auth = api.tokens.auth(OPERATOR)

    async def get(**query: object) -> httpx.Response:
        return await api.http.get("/api/documents", params=query, headers=auth)

    first = (await get(page_size=4)).json()
    assert (first["total"], len(first["items"]), first["page"]) == (10, 4, 1)
    last = (await get(page_size=4, page=3)).json()
    assert len(last["items"]) == 2
    assert (await get(status="completed")).json()["total"] == 1
    assert (await get(status="routed", recipient=H41)).json()["total"] == 4
    assert (await get(tier="department-district")).json()["total"] == 5
    assert (await get(overdue="true")).json()["total"] == 9
    assert (await get(sender=H41)).json()["total"] == 0
    assert (await get(since="2000-01-01T00:00:00", until="2999-01-01T00:00:00Z")).json()[
        "total"
    ] == 10
    assert (await get(tier="galaxy")).status_code == 422
    assert (await get(status="lost")).status_code == 422
    assert (await get(page_size=1000)).status_code == 400  # paging is a 400 (issue 14)

    overview = (await api.http.get("/api/overdue", headers=auth)).json()
    assert overview["total"] == 9
    assert overview["by_tier"]["central-provincial"] == 4
    assert overview["by_tier"]["department-district"] == 5
    mine = (await api.http.get("/api/overdue", headers=api.tokens.auth(H41))).json()
    assert mine["total"] == 4  # only what H41 sent or received


def test_the_published_openapi_description_is_what_the_router_serves() -> None:
    assert OPENAPI_PATH.read_text(encoding="utf-8") == openapi_json(router_openapi()), (
        "docs/tracking-openapi.json is stale: run python -m backbone.tracking.openapi"
    )
    paths = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))["paths"]
    assert {"/api/documents", "/api/documents/{document_id}", "/api/overdue"} <= set(paths)
    assert "401" in paths["/api/documents"]["get"]["responses"]


def test_tokens_in_the_settings_are_hashes_of_known_holders() -> None:
    digest = hash_token("s3cret-token")
    settings = Settings(tracking_tokens={digest: G22, "a" * 64: OPERATOR})
    book = TokenBook(settings.tracking_tokens)
    assert book.principal_of("s3cret-token") is not None
    assert book.principal_of("s3cret-token") == Principal(agencies=(G22,))
    assert book.principal_of(digest) is None  # the hash itself is no token
    with pytest.raises(ValueError, match="not a SHA-256"):
        Settings(tracking_tokens={"s3cret-token": G22})
    with pytest.raises(ValueError, match="neither an organ code"):
        Settings(tracking_tokens={digest: "H4"})
    hub = TokenBook({digest: f"{H41}, {G22},{H41}"})  # a hub's staff: several agencies
    assert hub.principal_of("s3cret-token") == Principal(agencies=(H41, G22))
    with pytest.raises(ValueError, match="'H4' is neither"):
        Settings(tracking_tokens={digest: f"{G22},H4"})
    with pytest.raises(ValueError, match="unknown time zone"):
        Settings(tracking_time_zone="Mars/Olympus")
    assert "s3cret-token" not in repr(settings)


def test_track_token_mints_a_token_and_prints_only_its_hash_for_the_settings() -> None:
    with capture_logs() as logs:
        result = CliRunner().invoke(cli, ["track", "token", "--agency", G22])
    assert result.exit_code == 0, result.output
    token = result.output.split("not stored): ", 1)[1].split()[0]
    assert f'"{hash_token(token)}": "{G22}"' in result.output
    assert token not in str(logs)
    assert CliRunner().invoke(cli, ["track", "token"]).exit_code == 2
    assert CliRunner().invoke(cli, ["track", "token", "--agency", "H4"]).exit_code == 2
    hub = CliRunner().invoke(cli, ["track", "token", "--agency", G22, "--agency", H41])
    assert hub.exit_code == 0, hub.output
    assert f'": "{G22},{H41}"' in hub.output


async def test_track_prints_the_timeline_per_recipient(tmp_path: Path) -> None:
    async with tracked_store("sqlite", tmp_path) as (ledger, _):
        sent = await ledger.send(G22, (H41, H53_DISTRICT), 7, due=date(2026, 12, 31))
        await ledger.status(H41, G22, sent.document_id, "03")
        await ledger.status(H53_DISTRICT, G22, sent.document_id, "02", "Sai địa chỉ")
    url = f"sqlite+aiosqlite:///{tmp_path / 'store' / 'router.db'}"

    def track(*args: str) -> Result:  # the command runs its own event loop: off this one
        return CliRunner().invoke(cli, ["track", *args, "--store-url", url])

    result = await asyncio.to_thread(track, sent.document_id)

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:2] == [sent.document_id, f"  from {G22}"]
    assert f"  {H41} (central-provincial): accepted, due 2026-12-31" in lines
    assert f"  {H53_DISTRICT} (department-district): rejected, due 2026-12-31" in lines
    assert any(line.endswith(f"accepted 03  by {H41}") for line in lines)
    assert any(line.endswith(f"rejected 02  by {H53_DISTRICT}  “Sai địa chỉ”") for line in lines)
    as_json = await asyncio.to_thread(track, "show", sent.document_id, "--json")
    assert json.loads(as_json.output)["document_id"] == sent.document_id
    missing = await asyncio.to_thread(track, f"{G22},2026/01/01,1/X")
    assert missing.exit_code == 1


def test_track_show_without_a_store_says_so_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("VDX_")]:
        monkeypatch.delenv(key)
    result = CliRunner().invoke(cli, ["track", "show", f"{G22},2026/01/01,1/X"])
    assert result.exit_code == 2
    assert result.output.startswith("error: [configuration_invalid] no router store at ")
    assert "--config" in result.output
    assert list(tmp_path.iterdir()) == []
