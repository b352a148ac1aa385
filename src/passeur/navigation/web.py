"""Navigation's HTTP JSON API, mounted on the stack's one web server (telepresence).

    GET  /api/places?world=W       public: places (fr/en names, poses), keep-out and slow zones
    GET  /api/patrols              staff: routes of the world and the current patrol status
    POST /api/patrols/start        staff: {"route": "closing_round"} -> status
    POST /api/patrols/stop         staff: -> status, with "stopped": false when none was running
    GET  /api/patrols/history?limit=N&route=R   staff: recorded runs, newest first

Errors are JSON {"error": code, "message": sentence}, as on the rest of the server (pages
show the code in their own language, never the English sentence): 400 bad_field / bad_json,
404 unknown_world / unknown_route, 409 patrol_busy (a patrol is already running), 409 estop
(the emergency stop is on: release it first). Work that touches files or SQLite runs in a thread, never
on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any, Protocol

from aiohttp import web

from passeur.navigation.exceptions import NavConfigError, PatrolRefusedError
from passeur.navigation.places import PlacesConfig, load_places, places_path
from passeur.telepresence.web_feature import WebContext

_WORLD = re.compile(r"^[a-z0-9_\-]{1,64}$")


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


class _PlacesSource(Protocol):
    world: str
    places: PlacesConfig | None


class PlacesFeature:
    name = "places"

    def __init__(self, default_world: str, node: _PlacesSource | None = None) -> None:
        self.default_world = default_world
        self.node = node
        self.context: WebContext | None = None

    def setup(self, app: web.Application, context: WebContext) -> None:
        self.context = context
        app.router.add_get("/api/places", self.get_places)

    def _load(self, world: str) -> dict[str, Any]:
        if self.node is not None and self.node.world == world and self.node.places is not None:
            return self.node.places.to_json()
        return load_places(places_path(world), world).to_json()

    async def get_places(self, request: web.Request) -> web.Response:
        world = request.query.get("world") or self.default_world
        if not _WORLD.match(world):
            return _error(400, "bad_field", "world must be a short lower-case name, e.g. 'library'")
        try:
            data = await asyncio.get_running_loop().run_in_executor(None, self._load, world)
        except NavConfigError as exc:
            return _error(404, "unknown_world", f"no places for world '{world}': {exc.problem}")
        return web.json_response(data)


class PatrolControl(Protocol):
    """What the patrol node offers to the web API (thread-safe)."""

    def routes_json(self) -> dict[str, Any]: ...

    def start_route(self, route_id: str, trigger: str) -> dict[str, Any]: ...

    def stop_patrol(self, reason: str) -> dict[str, Any]: ...

    def history_json(self, limit: int, route: str | None) -> list[dict[str, Any]]: ...


class PatrolBusyError(Exception):
    """A patrol is already running."""


class PatrolsFeature:
    name = "patrols"

    def __init__(self, control: PatrolControl) -> None:
        self.control = control
        self.context: WebContext | None = None

    def setup(self, app: web.Application, context: WebContext) -> None:
        self.context = context
        app.router.add_get("/api/patrols", self.list_routes)
        app.router.add_post("/api/patrols/start", self.start)
        app.router.add_post("/api/patrols/stop", self.stop)
        app.router.add_get("/api/patrols/history", self.history)

    async def _staff(self, request: web.Request) -> None:
        assert self.context is not None, "setup() not called"
        await self.context.require_staff(request)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def list_routes(self, request: web.Request) -> web.Response:
        await self._staff(request)
        return web.json_response(await self._run(self.control.routes_json))

    async def start(self, request: web.Request) -> web.Response:
        await self._staff(request)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            return _error(400, "bad_json", 'expected a JSON body {"route": "<route id>"}')
        if not isinstance(body, dict) or not isinstance(body.get("route"), str) \
                or not 0 < len(body["route"]) <= 64:
            return _error(400, "bad_field", 'expected a JSON body {"route": "<route id>"}')
        try:
            status = await self._run(self.control.start_route, body["route"], "web")
        except NavConfigError as exc:
            return _error(404, "unknown_route", exc.problem)
        except PatrolBusyError as exc:
            return _error(409, "patrol_busy", str(exc))
        except PatrolRefusedError as exc:
            return _error(409, exc.code, exc.english)
        return web.json_response(status)

    async def stop(self, request: web.Request) -> web.Response:
        await self._staff(request)
        return web.json_response(await self._run(self.control.stop_patrol, "stopped by staff (web)"))

    async def history(self, request: web.Request) -> web.Response:
        await self._staff(request)
        try:
            limit = int(request.query.get("limit", "20"))
        except ValueError:
            return _error(400, "bad_field", "limit must be a whole number")
        limit = max(1, min(limit, 500))
        route = request.query.get("route") or None
        runs = await self._run(self.control.history_json, limit, route)
        return web.json_response({"runs": runs})
