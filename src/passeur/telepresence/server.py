"""The one web server of the stack: pages, access API, WebRTC signalling, features.

aiohttp + aiortc on their own asyncio loop in a thread, beside the ROS executor; the two meet
only through thread-safe hand-offs (`loop.call_soon_threadsafe`,
`asyncio.run_coroutine_threadsafe`). The robot side is reached through `RobotPort`, so this
module has no rclpy import and can be tested with a fake robot.

HTTP routes (JSON bodies; sessions in HttpOnly SameSite=Strict cookies, never in URLs; any
request whose Host is not one the robot answers to (host_check: IP, localhost, its own name,
allowed_hosts) is refused with a 403 text page, against DNS rebinding; a request other than
GET/HEAD/OPTIONS, or a WebSocket handshake, whose Origin is not the robot's own host:port
is refused with 403 "cross_origin"; no page may be framed by another site):
    GET  /                      -> redirect to /pilot/
    GET  /pilot/ /staff/ /spectator/ and their files; /common/* shared CSS/JS
    GET  /api/health            {"ok": true}
    GET  /api/config            speed levels, look step, features mounted, staff enabled
    POST /api/session           {"code"} -> {"role", "expires_in_s"}    (pilot or spectator)
    GET  /api/session           the visitor's session, or 401
    POST /api/session/extend    pilot or spectator: extend the session (bounded)
    POST /api/session/end       leave (pilot: the robot stops)
    POST /api/rtc/offer         {"sdp", "type": "offer"} -> answer (needs a session; ?as=staff
                                for the staff session when the browser also has a visitor one)
    GET  /api/map               map metadata (resolution, origin, size) or 404
    GET  /api/map.png           the occupancy map as PNG (visitor or staff session)
    POST /api/staff/login       {"password"}; POST /api/staff/logout
    GET  /api/staff/status      robot status, sessions, link quality, the staff session's time
    POST /api/staff/extend      extend the staff session (bounded)
    POST /api/staff/codes       {"role": "pilot"|"spectator", "minutes", "scan": bool}
                                -> code + QR (SVG); "scan" makes the link start switch scanning
    POST /api/staff/codes/revoke
    POST /api/staff/estop       {"on": bool}
    POST /api/staff/end_pilot   end the pilot's session (the robot stops)
    POST /api/staff/takeover    end the pilot's session and make this browser the pilot
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ipaddress
import json
import logging
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aioice.ice
from aiohttp import web
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSctpTransport,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.exceptions import (
    InternalError,
    InvalidAccessError,
    InvalidStateError,
    OperationError,
)

from passeur.telepresence.access import (
    MIN_CODE_WINDOW_S,
    PILOT,
    SPECTATOR,
    STAFF,
    AccessManager,
    Session,
)
from passeur.telepresence.audio import AudioIO, SharedAudioEncoder
from passeur.telepresence.exceptions import AccessDenied, MessageError, TelepresenceConfigError
from passeur.telepresence.host_check import HostPolicy, refusal_text, validate_allowed_hosts
from passeur.telepresence.link_quality import LinkStats, link_stats
from passeur.telepresence.messages import (
    DRIVING,
    Command,
    Extend,
    Mute,
    Ping,
    SpeedLimits,
    parse_message,
)
from passeur.telepresence.priority import (
    RealtimeBudget,
    RealtimeGuard,
    set_thread_nice,
    set_thread_realtime,
)
from passeur.telepresence.video import CameraSource, SharedEncoder
from passeur.telepresence.web_feature import WebFeature

log = logging.getLogger(__name__)

WEB_ROOT = Path(__file__).resolve().parents[1] / "web"
PAGES = ("pilot", "staff", "spectator")
VISITOR_COOKIE = "passeur_visitor"
STAFF_COOKIE = "passeur_staff"
MAX_SDP_BYTES = 64 * 1024
MAX_MESSAGES_PER_S = 100
#: Methods that change nothing: allowed from any origin (links, images), except a WebSocket
#: handshake. Every other one must come from the robot's own pages (WebServer._same_origin).
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
CODECS = {"VP8": "video/VP8", "H264": "video/H264"}
#: What aiortc raises on an offer it cannot use (its SDP parser also uses plain asserts).
NEGOTIATION_ERRORS = (ValueError, KeyError, IndexError, TypeError, AssertionError,
                      InvalidAccessError, InvalidStateError, OperationError, InternalError)


# -- ICE host addresses ------------------------------------------------------------------------
_original_get_host_addresses = aioice.ice.get_host_addresses
_allowed_ice_hosts: tuple[str, ...] = ()


def _all_local_addresses() -> set[str]:
    import ifaddr

    found: set[str] = set()
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            found.add(ip.ip if isinstance(ip.ip, str) else ip.ip[0])
    return found


def _restricted_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """aioice's host-candidate list, restricted to (and allowed to include loopback from)
    the configured addresses. aioice alone never offers 127.0.0.1."""
    allowed = _allowed_ice_hosts
    if not allowed:
        return list(_original_get_host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6))
    local = _all_local_addresses()
    out = []
    for addr in allowed:
        version = ipaddress.ip_address(addr).version
        if addr in local and ((version == 4 and use_ipv4) or (version == 6 and use_ipv6)):
            out.append(addr)
    if not out:
        log.warning("none of the ICE host addresses %s exists on this machine", allowed)
    return out


def set_ice_host_addresses(addresses: Sequence[str]) -> None:
    """Restrict ICE host candidates to `addresses` (process-wide; empty = aioice default)."""
    global _allowed_ice_hosts
    for addr in addresses:
        try:
            ipaddress.ip_address(addr)
        except ValueError as exc:
            raise TelepresenceConfigError(
                f"ice_host_addresses: '{addr}' is not an IP address") from exc
    _allowed_ice_hosts = tuple(addresses)
    aioice.ice.get_host_addresses = _restricted_host_addresses  # type: ignore[assignment]


# -- SCTP (data channels): a bounded reassembly -----------------------------------------------
#: aiortc 1.16 buffers every DATA chunk until its message is complete and deliverable, and
#: never checks the chunks against the receive window it advertises (1 MiB): a peer with its
#: own SCTP stack could send a message that never ends, or tiny out-of-order ones, until the
#: process runs out of memory (and each chunk rescans the buffer). Browsers respect the window
#: and our channels use one or two streams; chunks past these bounds are dropped, as RFC 4960
#: allows for data beyond the window (a well-behaved sender retransmits them).
MAX_SCTP_INBOUND_STREAMS = 64
MAX_SCTP_BUFFERED_CHUNKS = 4096
_original_receive_data_chunk = RTCSctpTransport._receive_data_chunk


async def _bounded_receive_data_chunk(self: RTCSctpTransport, chunk: Any) -> None:
    streams = self._inbound_streams
    if not chunk.user_data or len(chunk.user_data) > self._advertised_rwnd \
            or (chunk.stream_id not in streams and len(streams) >= MAX_SCTP_INBOUND_STREAMS) \
            or sum(len(s.reassembly) for s in streams.values()) >= MAX_SCTP_BUFFERED_CHUNKS:
        return
    await _original_receive_data_chunk(self, chunk)


def bound_sctp_reassembly() -> None:
    """Install the bounds above on every aiortc SCTP association (process-wide, idempotent)."""
    RTCSctpTransport._receive_data_chunk = _bounded_receive_data_chunk  # type: ignore[method-assign]


# -- the robot, as the server sees it ------------------------------------------------------------
class RobotPort(Protocol):
    limits: SpeedLimits

    def command(self, command: Command, session: Session) -> dict[str, Any] | None:
        """Act on a validated driving command (loop thread; must not block). Returns an
        optional reply for the browser (e.g. an error for an unreachable pixel)."""
        ...

    def pilot_connected(self, session: Session) -> None:
        """A pilot's control channel opened: accept driving commands."""
        ...

    def pilot_disconnected(self, session: Session, reason: str) -> None:
        """Stop now and ignore driving until the next pilot_connected()."""
        ...

    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot (pose, speed, estop, navigation, patrol)."""
        ...

    def set_estop(self, on: bool) -> Awaitable[bool]:
        """Request e-stop on/off; resolves to whether it was acknowledged."""
        ...

    def map_png(self) -> tuple[bytes, dict[str, Any]] | None:
        """The occupancy map as PNG plus metadata, or None before a map arrives."""
        ...


@dataclass
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    tls_cert: str = ""
    tls_key: str = ""
    ice_host_addresses: tuple[str, ...] = ()
    #: Names the server answers to besides IP literals, localhost and the machine's own names
    #: (host_check); "*" = any name (unsafe: DNS rebinding).
    allowed_hosts: tuple[str, ...] = ()
    video_codec: str = "VP8"
    #: All video connections together. One slot is always kept for the pilot and one for
    #: staff: spectators get at most min(max_spectators, max_peers - 2).
    max_peers: int = 12
    max_spectators: int = 8
    #: Encode video and audio once for all viewers (video.SharedEncoder,
    #: audio.SharedAudioEncoder); False = one encoder of each per viewer (MediaRelay).
    shared_encoder: bool = True
    video_bitrate_bps: int = 1_200_000
    #: Niceness of the server's loop thread and every thread it starts (video encoder, audio
    #: encoding and decoding). Negative puts driving commands and video ahead of the rest of
    #: the process (simulator, ROS callbacks, planners) and of the programs started with it.
    thread_nice: int = 0
    #: SCHED_RR priority (1-99) of the loop thread alone; 0 = normal scheduling. Shortens the
    #: command latency tail. A real-time thread that faces the network could take CPU from
    #: the rest of the robot: it stays real-time only while it uses at most
    #: `thread_rt_share` of a core over each second, else it is back to normal scheduling
    #: for `thread_rt_cooldown_s` (priority.RealtimeBudget).
    thread_rt_priority: int = 0
    thread_rt_share: float = 0.5
    thread_rt_cooldown_s: float = 10.0
    status_period_s: float = 0.5
    housekeeping_period_s: float = 1.0
    #: A peer connection not established this long after its offer is closed: an offer
    #: without ICE candidates makes aiortc wait for ever, and would hold a viewer slot for the
    #: session's life. Browsers on the robot's network connect in a few seconds.
    connect_timeout_s: float = 30.0
    #: Open TCP connections one address may hold (each costs a file descriptor of the process
    #: that runs the whole robot, often limited to 1024). A browser keeps up to 6, its tabs
    #: share them; visitors behind one NAT (a class on a guest Wi-Fi) share the bound, hence
    #: room for about 40 browsers. Past it, a new connection is closed at once.
    max_connections_per_client: int = 256
    #: A connection with no request in progress is closed after this (aiohttp's low-level
    #: default, used by AppRunner, is an hour).
    idle_timeout_s: float = 75.0
    #: A cookie outlives its session's cap by this much; the server's expiry is authoritative.
    cookie_slack_s: float = 60.0
    web_root: Path = WEB_ROOT
    #: Extra fields for GET /api/config (look step, speed level names...).
    client_config: dict[str, Any] = field(default_factory=dict)

    def rt_budget(self) -> RealtimeBudget:
        """The real-time loop thread's CPU budget (ValueError: thread_rt_* out of range)."""
        return RealtimeBudget(self.thread_rt_share, 1.0, self.thread_rt_cooldown_s)

    def validate(self) -> None:
        if self.video_codec.upper() not in CODECS:
            raise TelepresenceConfigError(
                f"video codec '{self.video_codec}' is not supported; use VP8 or H264")
        if self.max_peers < 3 or self.max_spectators < 0:
            raise TelepresenceConfigError(
                f"max_viewers must be >= 3 (one slot for the pilot, one for staff, one spectator)"
                f" and max_spectators >= 0 (got {self.max_peers} and {self.max_spectators})")
        if not (-20 <= self.thread_nice <= 19):
            raise TelepresenceConfigError(
                f"web_thread_nice {self.thread_nice} is not a niceness (-20 to 19)")
        if not (0 <= self.thread_rt_priority <= 99):
            raise TelepresenceConfigError(
                f"web_thread_rt_priority {self.thread_rt_priority} is not 0 (off) to 99")
        try:
            self.rt_budget()
        except ValueError as exc:
            raise TelepresenceConfigError(
                f"{exc} (thread_rt_share, thread_rt_cooldown_s)") from exc
        if self.max_connections_per_client < 8 or not self.idle_timeout_s > 0:
            raise TelepresenceConfigError(
                f"max_connections_per_client must be >= 8 (a browser opens about 6) and "
                f"idle_timeout_s > 0 (got {self.max_connections_per_client} and "
                f"{self.idle_timeout_s})")
        if not self.connect_timeout_s > 0:
            raise TelepresenceConfigError(
                f"connect_timeout_s must be > 0 (got {self.connect_timeout_s})")
        if not (0 <= self.port <= 65535):
            raise TelepresenceConfigError(f"http_port {self.port} is not a TCP port (0-65535)")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise TelepresenceConfigError("set both tls_cert and tls_key (or neither)")
        for path in (self.tls_cert, self.tls_key):
            if path and not Path(path).is_file():
                raise TelepresenceConfigError("TLS file not found", path)
        set_ice_host_addresses(self.ice_host_addresses)  # validates the addresses
        validate_allowed_hosts(self.allowed_hosts)


@dataclass
class Peer:
    pc: RTCPeerConnection
    session: Session
    role: str
    client: str
    created_at: float = field(default_factory=time.monotonic)
    channel: Any = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    #: Tracks we send; aiortc does not stop them on close, and a live one keeps the shared
    #: encoder (or the relay) working for nobody.
    tracks: list[Any] = field(default_factory=list)
    messages: int = 0
    refused: int = 0
    closed: bool = False
    window_start: float = 0.0
    window_count: int = 0


class WebServer:
    """Implements WebContext for the features it mounts."""

    def __init__(self, options: ServerOptions, robot: RobotPort, access: AccessManager,
                 camera: CameraSource, audio: AudioIO,
                 features: Sequence[WebFeature] = ()) -> None:
        options.validate()
        bound_sctp_reassembly()
        self.options = options
        self.robot = robot
        self.access = access
        self.camera = camera
        self.audio = audio
        self.features = list(features)
        self.hosts = HostPolicy.from_config(options.allowed_hosts)
        self._refused_hosts: set[str] = set()  # logged once each (bounded)
        self.peers: list[Peer] = []
        #: feature peer connections -> when they were created (monotonic s)
        self._feature_pcs: dict[RTCPeerConnection, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._relay: MediaRelay | None = None
        self._encoder: SharedEncoder | None = None
        self._audio_encoder: SharedAudioEncoder | None = None
        self._audio_source: Any = None
        self._port: int | None = None
        self._housekeeper: asyncio.Future[None] | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stopping = False
        self._closed = False
        access.on_session_end(self._on_session_end)

    # -- WebContext ------------------------------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the web server is not started")
        return self._loop

    async def require_staff(self, request: web.Request) -> None:
        self._session(request, STAFF_COOKIE, STAFF)

    def create_peer_connection(self) -> RTCPeerConnection:
        """For features: a peer connection limited to the allowed ICE host addresses (no STUN:
        the robot is reached directly), closed at shutdown. Loop thread only."""
        pc = self._new_pc()
        self._feature_pcs[pc] = time.monotonic()

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self._feature_pcs.pop(pc, None)
                if pc.connectionState == "failed":
                    await pc.close()

        return pc

    @staticmethod
    def _new_pc() -> RTCPeerConnection:
        return RTCPeerConnection(RTCConfiguration(iceServers=[]))

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, timeout_s: float = 20.0) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="web-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TelepresenceConfigError("the web server did not start in time")
        if self._error is not None:
            error = self._error
            self._thread.join(5.0)
            self._thread = None
            if isinstance(error, OSError):
                raise TelepresenceConfigError(
                    f"cannot listen on {self.options.host}:{self.options.port} ({error.strerror});"
                    " choose another http_host/http_port") from error
            raise error

    def _run(self) -> None:
        # First, so that the threads this one starts (encoders, aiortc's) inherit the niceness.
        if not set_thread_nice(self.options.thread_nice):
            log.warning("could not set the web server threads' niceness to %d (a negative value "
                        "needs root or CAP_SYS_NICE): commands and video keep the default "
                        "priority; set web_thread_nice to 0 to silence this",
                        self.options.thread_nice)
        guard = self._go_realtime()
        try:
            self._serve_forever()
        finally:
            if guard is not None:
                guard.stop()

    def _serve_forever(self) -> None:
        loop = asyncio.new_event_loop()
        # Threads the loop starts for aiortc (audio decoding...) run at the server's niceness
        # even when the loop thread is real-time (whose children start at niceness 0).
        nice = self.options.thread_nice
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(
            thread_name_prefix="web-server-pool", initializer=set_thread_nice,
            initargs=(nice,)))
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - handed to start() in the caller's thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _go_realtime(self) -> RealtimeGuard | None:
        """The calling (loop) thread in SCHED_RR within its CPU budget, if asked and allowed."""
        o = self.options
        if o.thread_rt_priority == 0:
            return None
        if not set_thread_realtime(o.thread_rt_priority):
            log.info("the web server's loop thread runs at normal priority (SCHED_RR %d needs "
                     "root or CAP_SYS_NICE): driving commands may wait a few ms more on a busy "
                     "robot; web_thread_rt_priority 0 asks for normal priority",
                     o.thread_rt_priority)
            return None

        def changed(realtime: bool, share: float) -> None:
            if realtime:
                log.info("port %s: web server loop thread real-time again (SCHED_RR %d)",
                         self._port, o.thread_rt_priority)
            else:
                log.warning("port %s: the web server's loop thread used %.0f %% of a core: "
                            "normal priority for %g s (a real-time thread may take at most "
                            "%.0f %%)", self._port, 100 * share, o.thread_rt_cooldown_s,
                            100 * o.thread_rt_share)

        guard = RealtimeGuard(o.thread_rt_priority, o.rt_budget(), on_change=changed,
                              on_error=lambda message: log.warning("port %s: %s", self._port,
                                                                   message))
        guard.start()
        return guard

    async def _serve(self) -> None:
        self.camera.attach(asyncio.get_running_loop())
        self._relay = MediaRelay()
        self._audio_source = self.audio.microphone_track()
        app = self.build_app()
        self._runner = web.AppRunner(app, access_log=log if log.isEnabledFor(logging.DEBUG)
                                     else None, handle_signals=False,
                                     keepalive_timeout=self.options.idle_timeout_s)
        await self._runner.setup()
        assert self._runner.server is not None
        _ConnectionLimit(self.options.max_connections_per_client).install(self._runner.server)
        ssl_context = None
        if self.options.tls_cert:
            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                ssl_context.load_cert_chain(self.options.tls_cert, self.options.tls_key)
            except (ssl.SSLError, OSError) as exc:
                raise TelepresenceConfigError(f"cannot load the TLS certificate/key ({exc})",
                                              self.options.tls_cert) from exc
        site = web.TCPSite(self._runner, self.options.host, self.options.port,
                           ssl_context=ssl_context)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self._port = sockets[0].getsockname()[1] if sockets else self.options.port
        self._housekeeper = asyncio.ensure_future(self._housekeeping())

    async def _housekeeping(self) -> None:
        """Expire sessions on time even when nobody asks (their end stops the robot). One
        failing round is logged and the next one runs: expiry must never stop for good."""
        while not self._stopping:
            try:
                self.access.expire()
                await self._close_unconnected()
            except Exception:  # log and keep expiring (a listener bug, say)
                log.exception("session housekeeping failed; retrying")
            await asyncio.sleep(self.options.housekeeping_period_s)

    async def _close_unconnected(self) -> None:
        """Close the peer connections (viewers' and features') still not established
        connect_timeout_s after their offer."""
        deadline = time.monotonic() - self.options.connect_timeout_s
        for peer in [p for p in self.peers if p.created_at < deadline
                     and p.pc.connectionState in ("new", "connecting")]:
            log.warning("closing a %s connection from %s: not established in %.0f s",
                        peer.role, peer.client, self.options.connect_timeout_s)
            await self._close_peer(peer, "connect_timeout")
        for pc, created in list(self._feature_pcs.items()):
            if created < deadline and pc.connectionState in ("new", "connecting"):
                log.warning("closing a feature's connection: not established in %.0f s",
                            self.options.connect_timeout_s)
                self._feature_pcs.pop(pc, None)
                with contextlib.suppress(Exception):
                    await pc.close()

    def urls(self) -> list[str]:
        if self._port is None:
            return []
        scheme = "https" if self.options.tls_cert else "http"
        host = self.options.host
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        base = f"{scheme}://{host}:{self._port}"
        return [f"{base}/{page}/" for page in PAGES] + [
            f"{base}{path}" for f in self.features for path in getattr(f, "pages", ())]

    @property
    def base_url(self) -> str:
        return self.urls()[0].rsplit("/pilot/", 1)[0]

    def call(self, coro: Awaitable[Any], timeout_s: float = 10.0) -> Any:
        """Run a coroutine on the server loop from another thread and wait for it."""
        future: Any = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return future.result(timeout_s)

    def stop(self) -> None:
        """Close every peer, stop the server and its thread. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        loop = self._loop
        if loop is not None and loop.is_running():
            try:
                self.call(self._shutdown(), timeout_s=10.0)
            except Exception:
                log.exception("web server shutdown failed")
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10.0)
        self.audio.close()

    async def _shutdown(self) -> None:
        if self._housekeeper is not None:
            self._housekeeper.cancel()
        for peer in list(self.peers):
            await self._close_peer(peer, "shutdown")
        for pc in list(self._feature_pcs):
            with contextlib.suppress(Exception):
                await pc.close()
        self._feature_pcs.clear()
        if self._encoder is not None:
            self._encoder.close()
        if self._audio_encoder is not None:
            self._audio_encoder.close()
        self.camera.track.stop()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- app -------------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024, middlewares=[self._errors])
        r = app.router
        r.add_get("/", self._redirect_handler("/pilot/"))
        for page in PAGES:
            r.add_get(f"/{page}", self._redirect_handler(f"/{page}/"))
            r.add_get(f"/{page}/", self._page_handler(page))
        r.add_get("/api/health", self._health)
        r.add_get("/api/config", self._config)
        r.add_post("/api/session", self._session_start)
        r.add_get("/api/session", self._session_get)
        r.add_post("/api/session/extend", self._session_extend)
        r.add_post("/api/session/end", self._session_end)
        r.add_post("/api/rtc/offer", self._offer)
        r.add_get("/api/map", self._map_meta)
        r.add_get("/api/map.png", self._map_png)
        r.add_post("/api/staff/login", self._staff_login)
        r.add_post("/api/staff/logout", self._staff_logout)
        r.add_get("/api/staff/status", self._staff_status)
        r.add_post("/api/staff/extend", self._staff_extend)
        r.add_post("/api/staff/codes", self._staff_codes)
        r.add_post("/api/staff/codes/revoke", self._staff_revoke)
        r.add_post("/api/staff/estop", self._staff_estop)
        r.add_post("/api/staff/end_pilot", self._staff_end_pilot)
        r.add_post("/api/staff/takeover", self._staff_takeover)
        for feature in self.features:
            feature.setup(app, self)
        root = self.options.web_root
        r.add_static("/common/", root / "common")
        for page in PAGES:
            r.add_static(f"/{page}/", root / page)
        return app

    @staticmethod
    def _redirect_handler(location: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(_request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(location)
        return handler

    def _page_handler(self, page: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(_request: web.Request) -> web.StreamResponse:
            return web.FileResponse(self.options.web_root / page / "index.html",
                                    headers={"Cache-Control": "no-store"})
        return handler

    @web.middleware
    async def _errors(self, request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
        response: web.StreamResponse
        try:
            host = request.headers.get("Host")
            if not self.hosts.allows(host):
                response = self._host_refused(request, host or "")
            elif (request.method not in SAFE_METHODS or self._websocket(request)) and \
                    not self._same_origin(request):
                log.warning("refused a cross-origin %s %s%s from %s (Origin %s)",
                            request.method, request.path,
                            " (WebSocket)" if self._websocket(request) else "",
                            self._client(request), request.headers.get("Origin", "")[:100])
                response = web.json_response(
                    {"error": "cross_origin", "message": "requests that change something, and "
                     "WebSockets, must come from the robot's own pages"}, status=403)
            else:
                response = await handler(request)
        except AccessDenied as exc:
            status = 429 if exc.reason in ("locked", "busy") else \
                503 if exc.reason == "full" else \
                409 if exc.reason == "pilot_busy" else \
                403 if exc.reason == "forbidden" else 401
            headers = {"Retry-After": str(int(exc.retry_after_s) + 1)} \
                if exc.retry_after_s else None
            response = web.json_response({"error": exc.reason, "message": str(exc)},
                                         status=status, headers=headers)
        except _BadRequest as exc:
            response = web.json_response({"error": exc.code, "message": str(exc)}, status=400)
        except web.HTTPException as exc:
            # aiohttp's own refusals on the API (wrong method, a body over client_max_size on
            # a route that reads it with request.json(), no such route) in the same JSON shape;
            # redirects, pages and static files keep aiohttp's answers.
            if not (400 <= exc.status < 500 and request.path.startswith("/api/")):
                raise
            response = self._framework_error(request, exc)
        # Error answers too: they carry the same headers as any other.
        if request.path.startswith("/api/") or request.path.endswith((".html", "/")):
            response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        # No other site may frame a page (clickjacking the staff desk or the pilot's controls).
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
        return response

    def _host_refused(self, request: web.Request, host: str) -> web.Response:
        """Every route (pages, API, signalling, WebSocket) for a name the robot does not
        answer to: a DNS-rebinding page (its own name resolving to the robot) would pass the
        Origin check, Host and Origin being both its name."""
        if host not in self._refused_hosts and len(self._refused_hosts) < 64:
            self._refused_hosts.add(host)
            log.warning("refused requests for the host name '%s' from %s (%s %s): not an IP, "
                        "localhost or this machine's name; if the robot is reached by that "
                        "name, add it to allowed_hosts", host[:100], self._client(request),
                        request.method, request.path[:100])
        return web.Response(status=403, text=refusal_text(host), content_type="text/plain",
                            charset="utf-8")

    @staticmethod
    def _websocket(request: web.Request) -> bool:
        """A WebSocket handshake: a GET, yet browsers apply no same-origin policy to what
        comes back over the socket, so another site's page could open one and read it (the
        reader's events: how a child reads, word by word). Browsers always send Origin
        with it; it gets the same-origin check of state-changing requests."""
        return request.headers.get("Upgrade", "").lower() == "websocket"

    @staticmethod
    def _same_origin(request: web.Request) -> bool:
        """Whether a state-changing request may come from where it says it does. Browsers
        send Origin with every POST/DELETE, cross-site ones included, and a page of another
        site can POST a text/plain body that is JSON without any preflight: anything but the
        robot's own host:port (as the browser addressed it: IP or name, http or https) is
        refused. No Origin at all is a tool (curl, tests), not a page another site controls."""
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        _scheme, sep, host = origin.partition("://")
        return bool(sep) and host.lower() == request.host.lower()

    @staticmethod
    def _framework_error(request: web.Request, exc: web.HTTPException) -> web.Response:
        if isinstance(exc, web.HTTPMethodNotAllowed):
            code = "method_not_allowed"
            message = (f"{exc.method} is not allowed on {request.path} (allowed: "
                       f"{', '.join(sorted(exc.allowed_methods))})")
        elif isinstance(exc, web.HTTPRequestEntityTooLarge):
            code = "too_big"
            message = f"request body too large (at most {request.client_max_size} bytes)"
        elif isinstance(exc, web.HTTPNotFound):
            code, message = "not_found", f"no such address: {request.path}"
        else:
            code = exc.reason.lower().replace(" ", "_")
            message = exc.text or exc.reason
        headers = {k: v for k, v in exc.headers.items()
                   if k.lower() not in ("content-type", "content-length")}
        return web.json_response({"error": code, "message": message}, status=exc.status,
                                 headers=headers)

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _client(request: web.Request) -> str:
        return request.remote or "unknown"

    def _session(self, request: web.Request, cookie: str, role: str | None = None) -> Session:
        return self.access.validate(request.cookies.get(cookie), role)

    def _visitor(self, request: web.Request) -> Session:
        """The visitor session (pilot/spectator), or a staff session (watching)."""
        try:
            return self._session(request, VISITOR_COOKIE)
        except AccessDenied:
            return self._session(request, STAFF_COOKIE, STAFF)

    @staticmethod
    async def _json(request: web.Request, max_bytes: int = 8 * 1024) -> dict[str, Any]:
        if request.content_length is not None and request.content_length > max_bytes:
            raise _BadRequest("too_big", "request body too large")
        # read(n) returns what has arrived so far: a body in several TCP segments (an SDP
        # offer over Wi-Fi) needs several reads, up to its end or one byte past the bound.
        raw = b""
        while len(raw) <= max_bytes:
            chunk = await request.content.read(max_bytes + 1 - len(raw))
            if not chunk:
                break
            raw += chunk
        if len(raw) > max_bytes:
            raise _BadRequest("too_big", "request body too large")
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # too deeply nested
            raise _BadRequest("bad_json", "the request body is not valid JSON") from exc
        if not isinstance(body, dict):
            raise _BadRequest("bad_json", "the request body must be a JSON object")
        return body

    def _set_cookie(self, response: web.Response, name: str, session: Session) -> None:
        # The cookie lasts as long as the session could (every extension used), so that an
        # extension over the data channel (which cannot set cookies) keeps reconnects and
        # reloads working; the server's own expiry decides whether the session is alive.
        max_age = int(self.access.cap_s(session) + self.options.cookie_slack_s) + 1
        response.set_cookie(name, session.token, httponly=True, samesite="Strict", path="/",
                            secure=bool(self.options.tls_cert), max_age=max_age)

    def _session_json(self, session: Session) -> dict[str, Any]:
        return {"role": session.role, "expires_in_s": round(self.access.remaining_s(session)),
                "extensions_left": self.access.extensions_left(session),
                "extend_s": round(self.access.policy.extend_s(session.role))}

    # -- public / visitor routes -----------------------------------------------------------
    async def _health(self, _request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _config(self, _request: web.Request) -> web.Response:
        limits = self.robot.limits
        return web.json_response({
            "speed_levels": [{"linear_mps": lv.linear_mps, "angular_rps": lv.angular_rps}
                             for lv in limits.levels],
            "features": [f.name for f in self.features],
            "staff_enabled": self.access.staff_enabled,
            "video_codec": self.options.video_codec.upper(),
            **self.options.client_config,
        })

    async def _session_start(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        code = body.get("code")
        if not isinstance(code, str):
            raise _BadRequest("bad_field", "'code' must be a string")
        session = self.access.redeem_code(code, self._client(request))
        response = web.json_response(self._session_json(session))
        self._set_cookie(response, VISITOR_COOKIE, session)
        return response

    async def _session_get(self, request: web.Request) -> web.Response:
        return web.json_response(self._session_json(self._session(request, VISITOR_COOKIE)))

    async def _session_extend(self, request: web.Request) -> web.Response:
        session = self._session(request, VISITOR_COOKIE)
        if session.role not in (PILOT, SPECTATOR):
            raise AccessDenied("forbidden", "staff extend with /api/staff/extend")
        session = self.access.extend(session.token)
        response = web.json_response(self._session_json(session))
        self._set_cookie(response, VISITOR_COOKIE, session)
        return response

    async def _session_end(self, request: web.Request) -> web.Response:
        token = request.cookies.get(VISITOR_COOKIE, "")
        self.access.end(token, "left")
        response = web.json_response({"ended": True})
        response.del_cookie(VISITOR_COOKIE, path="/")
        return response

    async def _map_meta(self, request: web.Request) -> web.Response:
        self._visitor(request)
        found = self.robot.map_png()
        if found is None:
            return web.json_response({"error": "no_map", "message": "no map yet"}, status=404)
        return web.json_response(found[1])

    async def _map_png(self, request: web.Request) -> web.Response:
        self._visitor(request)
        found = self.robot.map_png()
        if found is None:
            return web.json_response({"error": "no_map", "message": "no map yet"}, status=404)
        return web.Response(body=found[0], content_type="image/png")

    # -- staff routes ----------------------------------------------------------------------
    async def _staff_login(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        password = body.get("password")
        if not isinstance(password, str):
            raise _BadRequest("bad_field", "'password' must be a string")
        client = self._client(request)
        # Lockout/throttle checks and the new session on the loop; only scrypt (tens of ms,
        # no shared state) in a worker thread, so the loop stays free.
        self.access.begin_staff_login(client)
        ok = False
        try:
            ok = await asyncio.get_running_loop().run_in_executor(
                None, self.access.check_staff_password, password)
        finally:
            session = self.access.finish_staff_login(ok, client)
        response = web.json_response({"role": STAFF, **self._session_json(session)})
        self._set_cookie(response, STAFF_COOKIE, session)
        return response

    async def _staff_logout(self, request: web.Request) -> web.Response:
        self.access.end(request.cookies.get(STAFF_COOKIE, ""), "logout")
        response = web.json_response({"ended": True})
        response.del_cookie(STAFF_COOKIE, path="/")
        return response

    async def _staff_status(self, request: web.Request) -> web.Response:
        staff = self._session(request, STAFF_COOKIE, STAFF)
        pilot = self.access.active_pilot()
        peers = []
        for peer in list(self.peers):
            peers.append({"role": peer.role, "session": peer.session.id,
                          "state": peer.pc.connectionState,
                          "age_s": round(time.monotonic() - peer.created_at),
                          **(await self._link_quality(peer)).as_json()})
        return web.json_response({
            "staff_session": self._session_json(staff),
            "robot": self.robot.status(),
            "pilot": None if pilot is None else {
                "session": pilot.id, "expires_in_s": round(self.access.remaining_s(pilot)),
                "connected": any(p.role == PILOT and not p.closed for p in self.peers)},
            "spectators": len(self.access.sessions(SPECTATOR)),
            "peers": peers,
            "codes": self.access.live_codes(),
            "video": {"frames_in": self.camera.frames_in, "size": self.camera.size},
        })

    async def _link_quality(self, peer: Peer) -> LinkStats:
        if peer.closed:
            return LinkStats()
        try:
            report = await asyncio.wait_for(peer.pc.getStats(), 1.0)
        except (asyncio.TimeoutError, InvalidStateError, ConnectionError, AttributeError):
            # Closing or not yet connected (aiortc has no transport to ask): no figures yet.
            log.debug("no link statistics for a %s peer", peer.role, exc_info=True)
            return LinkStats()
        return link_stats(report.values(), "video")

    async def _staff_extend(self, request: web.Request) -> web.Response:
        staff = self._session(request, STAFF_COOKIE, STAFF)
        session = self.access.extend(staff.token, STAFF)
        response = web.json_response(self._session_json(session))
        self._set_cookie(response, STAFF_COOKIE, session)
        return response

    async def _staff_codes(self, request: web.Request) -> web.Response:
        await self.require_staff(request)
        body = await self._json(request)
        role = body.get("role")
        minutes = body.get("minutes", self.access.policy.code_window_s / 60)
        scan = body.get("scan", False)
        if role not in (PILOT, SPECTATOR):
            raise _BadRequest("bad_field", "'role' must be 'pilot' or 'spectator'")
        if not isinstance(scan, bool):
            raise _BadRequest("bad_field", "'scan' must be true or false")
        low, high = MIN_CODE_WINDOW_S / 60, self.access.policy.max_code_window_s / 60
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) \
                or not (low <= minutes <= high):
            raise _BadRequest("bad_field", f"'minutes' must be a number from {low:g} to "
                                           f"{high:g} (how long the code stays valid)")
        try:
            issued = self.access.issue_code(str(role), float(minutes) * 60)
        except ValueError as exc:
            raise _BadRequest("refused", str(exc)) from exc
        page = "pilot" if role == PILOT else "spectator"
        # The code travels in the fragment, which browsers never send to a server; the page
        # removes it from the address bar at once.
        origin = f"{request.scheme}://{request.host}"
        # "scan=1": the pilot page starts single-switch scanning at once (for a visitor who
        # has only a switch: nothing else to press before driving).
        link = f"{origin}/{page}/#code={issued.code}" + ("&scan=1" if scan and role == PILOT
                                                         else "")
        return web.json_response({
            "code": issued.code, "role": issued.role,
            "expires_in_s": round(issued.valid_for_s), "link": link,
            "qr_svg": _qr_svg(link)}, headers={"Cache-Control": "no-store"})

    async def _staff_revoke(self, request: web.Request) -> web.Response:
        await self.require_staff(request)
        return web.json_response({"revoked": self.access.revoke_codes()})

    async def _staff_estop(self, request: web.Request) -> web.Response:
        await self.require_staff(request)
        body = await self._json(request)
        on = body.get("on")
        if not isinstance(on, bool):
            raise _BadRequest("bad_field", "'on' must be true or false")
        acknowledged = await self.robot.set_estop(on)
        return web.json_response({"estop": on, "acknowledged": acknowledged})

    async def _staff_end_pilot(self, request: web.Request) -> web.Response:
        await self.require_staff(request)
        ended = self.access.end_pilot("ended_by_staff")
        return web.json_response({"ended": ended is not None})

    async def _staff_takeover(self, request: web.Request) -> web.Response:
        staff = self._session(request, STAFF_COOKIE, STAFF)
        self.access.end_pilot("taken_over")
        session = self.access.grant(PILOT, staff.client)
        response = web.json_response({"role": PILOT, "pilot_url": "/pilot/"})
        self._set_cookie(response, VISITOR_COOKIE, session)
        return response

    # -- WebRTC ----------------------------------------------------------------------------
    def spectator_limit(self) -> int:
        """Spectator connections allowed: one slot stays free for the pilot and one for staff,
        whatever a widely shared spectator code brings."""
        return max(0, min(self.options.max_spectators, self.options.max_peers - 2))

    def _has_room(self, role: str) -> bool:
        live = [p for p in self.peers if not p.closed]
        others = [p for p in live if p.role != PILOT]
        if role == PILOT:
            return True  # the old pilot connection is replaced; others never take its slot
        if role == SPECTATOR:
            spectators = sum(p.role == SPECTATOR for p in live)
            return spectators < self.spectator_limit() and len(others) < self.options.max_peers - 2
        return len(others) < self.options.max_peers - 1  # staff: any slot but the pilot's

    async def _offer(self, request: web.Request) -> web.Response:
        # ?as=staff: the staff desk's video. A browser where staff took over also holds a pilot
        # cookie; watching from the desk with it would replace (end) staff's own pilot page.
        session = self._session(request, STAFF_COOKIE, STAFF) \
            if request.query.get("as") == STAFF else self._visitor(request)
        role = session.role
        body = await self._json(request, MAX_SDP_BYTES)
        sdp, kind = body.get("sdp"), body.get("type")
        if kind != "offer" or not isinstance(sdp, str) or not sdp.startswith("v=0"):
            raise _BadRequest("bad_sdp", "expected {\"type\": \"offer\", \"sdp\": \"v=0...\"}")
        if role == PILOT:
            for old in [p for p in self.peers if p.role == PILOT]:
                # A reload or a second tab replaces the old one, which must not reconnect.
                self._send(old, {"type": "replaced"})
                await self._close_peer(old, "replaced")
        if not self._has_room(role):
            log.warning("refused a %s viewer: %d connections already (max_viewers %d, "
                        "max_spectators %d)", role, len(self.peers), self.options.max_peers,
                        self.spectator_limit())
            return web.json_response({"error": "full", "message": "too many viewers"},
                                     status=503)
        pc = self._new_pc()
        peer = Peer(pc, session, role, self._client(request))
        self.peers.append(peer)
        self.camera.viewers = len(self.peers)
        self._wire(peer)
        try:
            assert self._relay is not None
            peer.tracks.append(self._video_track())
            video = pc.addTransceiver(peer.tracks[-1], direction="sendonly")
            mime = CODECS[self.options.video_codec.upper()]
            prefs = [c for c in RTCRtpSender.getCapabilities("video").codecs
                     if c.mimeType == mime]
            video.setCodecPreferences(prefs)  # BEFORE setRemoteDescription (aiortc 1.16)
            peer.tracks.append(self._audio_track())
            audio = pc.addTransceiver(peer.tracks[-1],
                                      direction="sendrecv" if role == PILOT else "sendonly")
            if self.options.shared_encoder:  # the shared packets are Opus
                audio.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("audio").codecs
                                           if c.mimeType == "audio/opus"])
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except NEGOTIATION_ERRORS as exc:
            log.warning("refused an offer from %s: %s: %s", peer.client, type(exc).__name__,
                        str(exc)[:200], exc_info=log.isEnabledFor(logging.DEBUG))
            log.debug("m-lines of the refused offer: %s",
                      [ln for ln in sdp.splitlines() if ln.startswith(("m=", "a=mid", "a=send",
                                                                       "a=recv", "a=inactive"))])
            await self._close_peer(peer, "bad_sdp")
            raise _BadRequest("bad_sdp", "the offer could not be used") from exc
        desc = pc.localDescription
        return web.json_response({"sdp": desc.sdp, "type": desc.type, "role": role})

    def _video_track(self) -> Any:
        if self.options.shared_encoder:
            if self._encoder is None:
                self._encoder = SharedEncoder(self.camera, self.options.video_codec.upper(),
                                              self.options.video_bitrate_bps,
                                              thread_nice=self.options.thread_nice)
            return self._encoder.subscribe()
        assert self._relay is not None
        return self._relay.subscribe(self.camera.track, buffered=False)

    def _audio_track(self) -> Any:
        if self.options.shared_encoder:
            if self._audio_encoder is None:
                self._audio_encoder = SharedAudioEncoder(self._audio_source)
            return self._audio_encoder.subscribe()
        assert self._relay is not None
        return self._relay.subscribe(self._audio_source, buffered=False)

    def _wire(self, peer: Peer) -> None:
        pc = peer.pc

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self._close_peer(peer, pc.connectionState)

        @pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind == "audio" and peer.role == PILOT:
                peer.tasks.append(asyncio.ensure_future(self.audio.play(track)))

        @pc.on("datachannel")
        def on_datachannel(channel: Any) -> None:
            if peer.channel is not None or peer.closed:
                channel.close()
                return
            peer.channel = channel
            if peer.role == PILOT:
                # The robot's sound is the pilot's to mute, one pilot at a time: a mute left by
                # the previous pilot (or connection) must not silence the next one unseen; a
                # pilot page that had muted itself says so again on "hello".
                self.audio.mic_muted = False
                self.audio.speaker_muted = False
                self.robot.pilot_connected(peer.session)

            @channel.on("message")
            def on_message(raw: Any) -> None:
                self._on_message(peer, raw)

            @channel.on("close")
            def on_close() -> None:
                asyncio.ensure_future(self._close_peer(peer, "channel_closed"))

            peer.tasks.append(asyncio.ensure_future(self._push_status(peer)))
            self._send(peer, {"type": "hello", "role": peer.role,
                              **self._session_json(peer.session)})

    def _send(self, peer: Peer, obj: dict[str, Any]) -> None:
        channel = peer.channel
        if channel is not None and channel.readyState == "open":
            try:
                channel.send(json.dumps(obj))
            except (ConnectionError, ValueError, RuntimeError, InvalidStateError):
                log.debug("send on a closing channel", exc_info=True)

    def _on_message(self, peer: Peer, raw: Any) -> None:
        """Every browser message: validate, check the session, act. Never raises."""
        peer.messages += 1
        if peer.closed:
            return
        # A flood gets no answers (no amplification) and cannot starve the loop: a pilot sends
        # ~10 messages/s; past MAX_MESSAGES_PER_S the rest of the second is dropped.
        now = time.monotonic()
        if now - peer.window_start >= 1.0:
            peer.window_start, peer.window_count = now, 0
        peer.window_count += 1
        if peer.window_count > MAX_MESSAGES_PER_S:
            peer.refused += 1
            return
        try:
            if not isinstance(raw, str | bytes):
                raise MessageError("bad_json", "unsupported message")
            parsed = parse_message(raw, self.robot.limits)
        except MessageError as exc:
            peer.refused += 1
            self._send(peer, {"type": "error", "code": exc.code, "message": str(exc)})
            return
        command, seq = parsed.command, parsed.seq
        reply: dict[str, Any] | None
        try:
            session = self.access.validate(peer.session.token)
        except AccessDenied:
            self._send(peer, {"type": "error", "code": "session_ended", "seq": seq,
                              "message": "this session has ended"})
            return
        if isinstance(command, Ping):
            reply = {"type": "pong", "t": command.t, "server_time": time.time()}
        elif isinstance(command, Extend):
            try:
                self.access.extend(session.token)
                reply = {"type": "session", **self._session_json(session)}
            except AccessDenied as exc:
                reply = {"type": "error", "code": exc.reason, "message": str(exc)}
        elif isinstance(command, Mute):
            # The robot's microphone and speaker are shared by everyone watching: only the
            # pilot changes them (spectators mute their own playback in their page).
            if peer.role != PILOT or session.role != PILOT:
                peer.refused += 1
                reply = {"type": "error", "code": "forbidden",
                         "message": "only the pilot can mute the robot"}
            else:
                if command.target == "robot_mic":
                    self.audio.mic_muted = command.on
                else:
                    self.audio.speaker_muted = command.on
                reply = {"type": "muted", "target": command.target, "on": command.on}
        elif isinstance(command, DRIVING):
            if peer.role != PILOT or session.role != PILOT:
                peer.refused += 1
                reply = {"type": "error", "code": "forbidden",
                         "message": "spectators cannot drive"}
            else:
                reply = self.robot.command(command, session)
        else:  # pragma: no cover - every Command type is handled above
            reply = None
        if reply is not None:
            if seq is not None:
                reply["seq"] = seq
            self._send(peer, reply)

    async def _push_status(self, peer: Peer) -> None:
        while not peer.closed:
            try:
                status = self.robot.status()
                session = peer.session
                self._send(peer, {"type": "status", "robot": status,
                                  "expires_in_s": round(self.access.remaining_s(session))})
            except Exception:
                log.exception("status push failed")
            await asyncio.sleep(self.options.status_period_s)

    async def _close_peer(self, peer: Peer, reason: str) -> None:
        if peer.closed:
            return
        peer.closed = True
        if peer in self.peers:
            self.peers.remove(peer)
        self.camera.viewers = len(self.peers)
        if peer.role == PILOT:
            self.robot.pilot_disconnected(peer.session, reason)
        for task in peer.tasks:
            task.cancel()
        for track in peer.tracks:
            track.stop()
        log.info("%s peer closed (%s)", peer.role, reason)
        with contextlib.suppress(Exception):
            await peer.pc.close()

    def _on_session_end(self, session: Session) -> None:
        """AccessManager callback: stop the robot, drop the session's peers. Peers live on the
        loop: a call from another thread hops there (the robot is stopped at once anyway)."""
        if session.role == PILOT:
            self.robot.pilot_disconnected(session, session.end_reason or "ended")
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if self._thread is not None and threading.current_thread() is not self._thread:
            loop.call_soon_threadsafe(self._drop_session_peers, session)
            return
        self._drop_session_peers(session)

    def _drop_session_peers(self, session: Session) -> None:
        loop = self.loop
        for peer in [p for p in self.peers if p.session is session]:
            self._send(peer, {"type": "session_ended", "reason": session.end_reason})
            loop.call_soon_threadsafe(self._schedule_close, peer, "session_ended")

    def _schedule_close(self, peer: Peer, reason: str) -> None:
        asyncio.ensure_future(self._close_peer(peer, reason))


class _ConnectionLimit:
    """At most `per_client` open connections per remote address; past it, a new connection
    is closed as soon as it is made. Hooks aiohttp's low-level Server, whose connection_made/
    connection_lost every connection's handler calls (loop thread only)."""

    def __init__(self, per_client: int) -> None:
        self.per_client = per_client
        self.counts: dict[str, int] = {}
        self._address: dict[object, str] = {}  # counted handler -> its address
        self._warned: set[str] = set()

    def install(self, server: Any) -> None:
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: object, transport: asyncio.Transport) -> None:
            made(handler, transport)
            peer = transport.get_extra_info("peername")
            address = str(peer[0]) if peer else "unknown"
            if self.counts.get(address, 0) >= self.per_client:
                if address not in self._warned:  # once per burst, not once per connection
                    self._warned.add(address)
                    log.warning("closing connections from %s: %d open already "
                                "(max_connections_per_client)", address, self.per_client)
                transport.close()
                return
            self.counts[address] = self.counts.get(address, 0) + 1
            self._address[handler] = address

        def connection_lost(handler: object, exc: BaseException | None = None) -> None:
            address = self._address.pop(handler, None)
            if address is not None:
                self.counts[address] -= 1
                if self.counts[address] <= 0:
                    del self.counts[address]
                    self._warned.discard(address)
            lost(handler, exc)

        server.connection_made = connection_made
        server.connection_lost = connection_lost


class _BadRequest(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _qr_svg(text: str) -> str:
    import io

    import segno

    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="svg", scale=6, border=2, xmldecl=False,
                                     svgns=True, title="QR code", dark="#000", light="#fff")
    return buffer.getvalue().decode("utf-8")
