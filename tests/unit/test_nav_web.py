"""Navigation's HTTP API on a bare aiohttp app with a test WebContext (the real server is the
telepresence node's). The patrol API is backed by a real PatrolNode (no simulator needed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.unit.test_nav_config import PLACES, ROUTES

STAFF = {"Authorization": "Bearer staff-token"}


class FakeContext:
    def __init__(self) -> None:
        self._loop = asyncio.get_event_loop()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    async def require_staff(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != STAFF["Authorization"]:
            raise web.HTTPUnauthorized(text='{"error": "staff only"}',
                                       content_type="application/json")

    def create_peer_connection(self) -> object:
        raise NotImplementedError


@pytest.fixture
def patrol_node(ros_context: Any, tmp_path: Path) -> Iterator[Any]:
    from rclpy.parameter import Parameter

    from passeur.navigation.patrol_node import PatrolNode

    places = tmp_path / "test.yaml"
    places.write_text(yaml.safe_dump(PLACES), encoding="utf-8")
    routes = tmp_path / "routes.yaml"
    routes.write_text(yaml.safe_dump(ROUTES), encoding="utf-8")
    node = PatrolNode(context=ros_context, parameter_overrides=[
        Parameter("world", value="test"), Parameter("places_file", value=str(places)),
        Parameter("patrols_file", value=str(routes)),
        Parameter("history_db", value=str(tmp_path / "history.sqlite3")),
        Parameter("schedule_enabled", value=False)])
    try:
        yield node
    finally:
        node.destroy_node()


@pytest.fixture
async def client(patrol_node: Any) -> AsyncIterator[TestClient]:
    from passeur.navigation.web import PlacesFeature

    app = web.Application()
    ctx = FakeContext()
    for feature in [*patrol_node.web_features(), PlacesFeature(default_world="library")]:
        feature.setup(app, ctx)
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_patrol_api_requires_staff(client: TestClient) -> None:
    for method, url in (("GET", "/api/patrols"), ("POST", "/api/patrols/start"),
                        ("POST", "/api/patrols/stop"), ("GET", "/api/patrols/history")):
        resp = await client.request(method, url)
        assert resp.status == 401, url


async def test_start_stop_and_history(client: TestClient) -> None:
    resp = await client.get("/api/patrols", headers=STAFF)
    assert resp.status == 200
    data = await resp.json()
    assert [r["id"] for r in data["routes"]] == ["closing"]
    assert data["routes"][0]["schedule"] == {"daily": "17:45"}
    assert data["places"]["desk"] == {"fr": "Accueil", "en": "Desk"}
    assert data["status"]["state"] == "idle"

    resp = await client.post("/api/patrols/start", json={"route": "closing"}, headers=STAFF)
    assert resp.status == 200
    status = await resp.json()
    assert status["state"] == "navigating" and status["place"] == "hall"

    resp = await client.post("/api/patrols/start", json={"route": "closing"}, headers=STAFF)
    assert resp.status == 409
    body = await resp.json()
    # A code the staff page says in its language; the sentence is for logs and curl.
    assert body["error"] == "patrol_busy" and "already running" in body["message"]

    resp = await client.post("/api/patrols/stop", headers=STAFF)
    assert (await resp.json())["outcome"] == "stopped"

    resp = await client.get("/api/patrols/history", headers=STAFF)
    runs = (await resp.json())["runs"]
    assert runs[0]["route"] == "closing" and runs[0]["outcome"] == "stopped"


async def test_bad_requests(client: TestClient) -> None:
    resp = await client.post("/api/patrols/start", json={"route": "nope"}, headers=STAFF)
    assert resp.status == 404
    body = await resp.json()
    assert body["error"] == "unknown_route" and "unknown route 'nope'" in body["message"]
    resp = await client.post("/api/patrols/start", data=b"{not json", headers=STAFF)
    assert resp.status == 400 and (await resp.json())["error"] == "bad_json"
    # Nested deeper than the JSON parser's recursion limit: a bad request, not a 500.
    resp = await client.post("/api/patrols/start", data="[" * 3000 + "]" * 3000, headers=STAFF)
    body = await resp.json()
    assert resp.status == 400 and body["error"] == "bad_json" and "route" in body["message"]
    resp = await client.get("/api/patrols/history?limit=x", headers=STAFF)
    assert resp.status == 400


def test_every_patrol_api_error_code_is_said_in_french_and_english() -> None:
    """The staff page shows {"error": code} in its language ("error." + code): a French desk
    that started a second patrol read "Une erreur est survenue (code : patrol 'x' is already
    running; stop it first)"."""
    import re

    root = Path(__file__).resolve().parents[2]
    codes = set(re.findall(r'_error\(\d+, "([a-z_]+)"',
                           (root / "src/passeur/navigation/web.py").read_text("utf-8")))
    assert {"patrol_busy", "unknown_route", "bad_field", "bad_json"} <= codes
    i18n = (root / "src/passeur/web/common/i18n.js").read_text("utf-8")
    for code in codes:
        assert i18n.count(f'"error.{code}"') == 2, code


async def test_places_are_public(client: TestClient) -> None:
    resp = await client.get("/api/places?world=../etc")
    assert resp.status == 400 and (await resp.json())["error"] == "bad_field"
    resp = await client.get("/api/places?world=atlantis")
    assert resp.status == 404
    body = await resp.json()
    assert body["error"] == "unknown_world" and "no places for world 'atlantis'" in body["message"]


async def test_places_include_spoken_descriptions(client: TestClient) -> None:
    resp = await client.get("/api/places?world=library")
    assert resp.status == 200
    places = {p["id"]: p for p in (await resp.json())["places"]}
    assert places["entrance"]["description"]["en"].startswith("Welcome to the library")
    assert places["kiosk"]["description"] == {}


async def test_stop_says_whether_a_patrol_was_running(client: TestClient) -> None:
    """"Stop the patrol" with none running answered "Done." on the desk: the reply now says
    whether a run was stopped."""
    resp = await client.post("/api/patrols/stop", headers=STAFF)
    assert resp.status == 200 and (await resp.json())["stopped"] is False
    await client.post("/api/patrols/start", json={"route": "closing"}, headers=STAFF)
    resp = await client.post("/api/patrols/stop", headers=STAFF)
    body = await resp.json()
    assert body["stopped"] is True and body["outcome"] == "stopped"
    resp = await client.post("/api/patrols/stop", headers=STAFF)
    assert (await resp.json())["stopped"] is False


async def test_start_during_the_estop_is_refused_with_a_code(client: TestClient,
                                                             patrol_node: Any) -> None:
    from std_msgs.msg import Bool

    for sub in [s for s in patrol_node.subscriptions if s.topic_name.endswith("/estop/state")]:
        sub.callback(Bool(data=True))
    resp = await client.post("/api/patrols/start", json={"route": "closing"}, headers=STAFF)
    assert resp.status == 409
    body = await resp.json()
    assert body["error"] == "estop" and "release the emergency stop first" in body["message"]
    staff = (Path(__file__).resolve().parents[2] / "src/passeur/web/staff/staff.js").read_text()
    assert '"staff.patrol_estop"' in staff
    i18n = (Path(__file__).resolve().parents[2] / "src/passeur/web/common/i18n.js").read_text()
    assert i18n.count('"staff.patrol_estop"') == 2
