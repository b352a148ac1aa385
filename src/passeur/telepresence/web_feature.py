"""The contract between the one web server (hosted by the telepresence node) and the areas
that add pages or APIs to it (navigation's patrol/places API, reading's reader page).

A node that serves web content implements `web_features() -> list[WebFeature]`; bringup hands
every feature to the telepresence node (`add_web_features`), which calls `setup()` once on its
asyncio loop before serving. Features never block the loop: ROS work is handed to the executor
thread-safely, heavy work (ASR, TTS) goes to worker threads. The server checks every request
before a feature's handler sees it: Host (DNS rebinding), and Origin for anything but
GET/HEAD/OPTIONS and for WebSocket handshakes (another site's page is refused with 403).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from aiohttp import web


class WebContext(Protocol):
    """What the server offers to features."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    async def require_staff(self, request: web.Request) -> None:
        """Return if the request carries a valid staff session; else raise HTTPUnauthorized."""
        ...

    def create_peer_connection(self) -> object:
        """An aiortc RTCPeerConnection configured with the allowed ICE host addresses and
        tracked so that it is closed at shutdown."""
        ...


class WebFeature(Protocol):
    """A feature may also define `pages: tuple[str, ...]`, the paths of its pages (e.g.
    `("/reader/",)`): the server then lists them in `urls()` (printed by `passeur sim`)."""

    #: Short id, e.g. "patrols", "reader".
    name: str

    def setup(self, app: web.Application, context: WebContext) -> None:
        """Add routes (and on_startup/on_cleanup hooks) to `app`."""
        ...
