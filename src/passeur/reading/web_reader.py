"""The reader page (`/reader`) and its API, as a WebFeature hosted by the one web server.

HTTP (JSON unless said otherwise; public: the reader page is for children at the robot):
- GET  /reader                                  the page (static files under /reader/static/)
- GET  /reader/fonts/OpenDyslexic-Regular.woff   the dyslexia-friendly font (also -Bold)
- GET  /api/reading/books                       [{"id","title","lang","level","pages"}]
- GET  /api/reading/books/{book}/pages/{n}      page text + tokens (spans for highlighting)
                                                + "can_listen" (an ASR model for its language)
- POST /api/reading/books/{book}/pages/{n}/speech  "Read to me": {"audio", "duration_s",
                                                "speaker", "words": [{"token","start_s","end_s"}]}
                                                (POST: the robot may read it aloud)
- GET  /api/reading/audio/{key}.wav             robot speech / page reading (audio/wav)
- POST /api/reading/sessions {"book","page","mode": read_to_me|i_read|together|practice,
                               "reader"?, "word"? (practice: a word of the page),
                               "source"?: "page" (WebRTC/upload, default) | "robot" (local mic)}
                                                -> {"session": id, "page": ...}
- POST /api/reading/sessions/{id}/offer {"sdp","type"}   WebRTC: the page's microphone track
                                                (400 for a session that does not listen,
                                                or that listens to the robot's microphone)
                                                -> {"sdp","type"} (answer)
- GET  /api/reading/sessions/{id}/events        WebSocket: server -> page events (the server
                                                refuses another site's handshake, 403)
      {"type":"position","token","position","words":[...]} | {"type":"say","text","lang",
      "audio","duration_s","words"?} | {"type":"finished","wcpm","accuracy",...} |
      {"type":"practice","word","correct"} | {"type":"error","message"}
- POST /api/reading/sessions/{id}/audio         body: a WAV file (instead of WebRTC); 400 for
                                                a session that does not listen (read_to_me)
                                                or listens to the robot's microphone
- POST /api/reading/sessions/{id}/finish        -> the "finished" event (score), saved
                                                (?quiet=1: the robot says nothing about it)
- DELETE /api/reading/sessions/{id}
- POST /api/reading/say {"text","lang"}         the robot says something (staff only)
- POST /api/reading/playback {"audio","state": start|end}  the page plays robot speech on its
                                                own speaker: microphones gated meanwhile
Errors: {"error": message} with 400 (bad input), 404 (unknown book/page/session), 413
(recording too long or too large), 429 (the robot's speaker already has a page reading and
one waiting, or MAX_QUEUED_ANNOUNCEMENTS announcements to say), 503 (no speech model for
the language, progress store unusable, max_sessions uploads already in progress). A result that could not be saved is
still returned, with "saved": false and a "warning" {"code": "not_saved", "message"}.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import WSCloseCode, WSMsgType, web

from passeur.reading.audio_in import frames
from passeur.reading.exceptions import (
    ASRUnavailable,
    AudioFormatError,
    BookError,
    ProgressStoreError,
    ReaderNameError,
    ReadingError,
    RecordingTooLong,
    SessionsFull,
    SpeakerBusy,
    UnknownAudio,
    UnknownSession,
)
from passeur.reading.service import MAX_QUEUED_S, LiveSession, ReadingService, page_payload

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parents[1] / "web" / "reader"
#: The dyslexia-friendly font, served to the page (tablets do not have it installed): Debian
#: package fonts-opendyslexic (scripts/debian-packages.txt).
FONT_DIRS = (Path("/usr/share/fonts/woff/opendyslexic"),
             Path("/usr/share/fonts/opentype/opendyslexic"))
_FONT_NAME = re.compile(r"^OpenDyslexic-(Regular|Bold|Italic|BoldItalic)\.(woff|otf)$")
_FONT_TYPES = {"woff": "font/woff", "otf": "font/otf"}
MAX_BODY = 20 * 1024 * 1024
#: "I'm done" first lets the recogniser take in the audio queued before it; it stops waiting
#: when no audio has been taken in for this long (a stuck or overloaded recogniser): the
#: child gets the score of what was heard instead of a page that hangs.
FINISH_STALL_S = 5.0


def _status(exc: Exception) -> int:
    """HTTP status by exception type: 404 unknown book/page/session, 413 recording too long,
    503 no speech model, progress store unusable or every session in use, else 400 (bad
    input)."""
    if isinstance(exc, (BookError, UnknownSession, UnknownAudio)):
        return 404
    if isinstance(exc, RecordingTooLong):
        return 413
    if isinstance(exc, SpeakerBusy):
        return 429
    if isinstance(exc, (ASRUnavailable, ProgressStoreError, SessionsFull)):
        return 503
    return 400


def _error(exc: Exception) -> web.Response:
    body = {"error": str(exc)}
    if isinstance(exc, ReaderNameError):
        body["code"] = "reader_name"  # the page tells the child what to change
    elif isinstance(exc, SessionsFull):
        body["code"] = "sessions_full"  # the page says other children are reading
    return web.json_response(body, status=_status(exc))


def _must_listen(session: LiveSession, what: str) -> None:
    """Audio for a session that does not listen ("Read to me") would be accepted and lost;
    audio for one that listens to the robot's own microphone would be mixed with it (two
    voices in one stream: neither reading follows)."""
    if not session.listening:
        raise ReadingError(
            f"this reading session (mode '{session.mode}') does not listen, so {what} sent to "
            "it would be lost: start an 'I read' ('i_read'), 'Together' ('together') or "
            "practice ('practice') session and send it there")
    if session.source == "robot":
        raise ReadingError(
            f"this reading session listens to the robot's own microphone (source 'robot'), "
            f"so {what} sent to it would be mixed with that microphone: start a session with "
            "source 'page' (the default) and send it there")


def find_font(name: str) -> Path | None:
    for folder in FONT_DIRS:
        if (folder / name).is_file():
            return folder / name
    return None


class ReaderFeature:
    name = "reader"
    #: Listed by the server in `passeur sim`'s "open:" lines.
    pages = ("/reader",)

    def __init__(self, service: ReadingService) -> None:
        self.service = service
        self.context: Any = None
        self._pcs: set[Any] = set()
        #: the one peer connection of each reading session (the page makes one offer; the API
        #: is public, so a repeated offer replaces the previous connection instead of adding one)
        self._session_pcs: dict[str, tuple[Any, Any]] = {}  # sid -> (pc, its on_close hook)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: set[asyncio.Task[None]] = set()  # peer connections being closed
        self._uploads = 0  # uploads being read or decoded (loop thread only)
        self._stopping = False  # the server is shutting down: finishing waits no more
        #: open event sockets: closed at shutdown, which otherwise waits for each to end
        self._sockets: set[web.WebSocketResponse] = set()

    def setup(self, app: web.Application, context: Any) -> None:
        self.context = context
        r = app.router
        r.add_get("/reader", self.index)
        r.add_get("/reader/", self.index)
        r.add_static("/reader/static/", STATIC, show_index=False)
        r.add_get("/reader/fonts/{name}", self.font)
        if find_font("OpenDyslexic-Regular.woff") is None:
            log.warning("reader: the dyslexia-friendly font is not installed (Debian package "
                        "fonts-opendyslexic): the page falls back to other fonts")
        r.add_get("/api/reading/books", self.books)
        r.add_get("/api/reading/books/{book}/pages/{page}", self.page)
        # POST, not GET: it may make the robot read aloud and hold its speaker, which a link
        # or an <img> of another site must not do (the server refuses cross-origin POSTs).
        r.add_post("/api/reading/books/{book}/pages/{page}/speech", self.page_speech)
        r.add_get("/api/reading/audio/{key}.wav", self.audio)
        r.add_post("/api/reading/sessions", self.create_session)
        r.add_post("/api/reading/sessions/{sid}/offer", self.offer)
        r.add_get("/api/reading/sessions/{sid}/events", self.events)
        r.add_post("/api/reading/sessions/{sid}/audio", self.upload_audio)
        r.add_post("/api/reading/sessions/{sid}/finish", self.finish)
        r.add_delete("/api/reading/sessions/{sid}", self.delete_session)
        r.add_post("/api/reading/say", self.say)
        r.add_post("/api/reading/playback", self.playback)
        app.on_shutdown.append(self._on_shutdown)

    async def _on_shutdown(self, _app: web.Application) -> None:
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        # An open reader page's socket would hold the server's shutdown (aiohttp waits for
        # every handler) until the page goes away.
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
        # Sessions outlive the server (the reading service closes them later): their hooks
        # must not try to close these connections again on a loop that has stopped.
        for sid, (_pc, hook) in list(self._session_pcs.items()):
            session = self.service.sessions.get(sid)
            if session is not None and hook in session.on_close:
                session.on_close.remove(hook)
        pcs, self._pcs = list(self._pcs), set()
        self._session_pcs.clear()
        for pc in pcs:
            await pc.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    # -- pages -------------------------------------------------------------------------------
    async def index(self, _request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html",
                                headers={"Cache-Control": "no-cache"})

    async def font(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = find_font(name) if _FONT_NAME.match(name) else None
        if path is None:
            return web.json_response({"error": f"font '{name}' not available (install the "
                                               "Debian package fonts-opendyslexic)"},
                                     status=404)
        return web.FileResponse(path, headers={
            "Content-Type": _FONT_TYPES[name.rsplit(".", 1)[1]],
            "Cache-Control": "public, max-age=86400"})

    async def books(self, _request: web.Request) -> web.Response:
        books = await asyncio.to_thread(self.service.library.books)
        return web.json_response([b.summary() for b in books])

    @staticmethod
    def _page_number(request: web.Request) -> int:
        try:
            return int(request.match_info["page"])
        except ValueError as exc:
            raise ReadingError("page must be a number") from exc

    async def page(self, request: web.Request) -> web.Response:
        try:
            book = await asyncio.to_thread(self.service.library.get, request.match_info["book"])
            payload = page_payload(book, self._page_number(request))
        except ReadingError as exc:
            return _error(exc)
        except BookError as exc:
            return _error(exc)
        payload["can_listen"] = await asyncio.to_thread(self.service.can_listen, book.lang)
        return web.json_response(payload)

    async def page_speech(self, request: web.Request) -> web.Response:
        try:
            _key, payload = await asyncio.to_thread(
                self.service.synthesize_page, request.match_info["book"],
                self._page_number(request))
        except (ReadingError, BookError) as exc:
            return _error(exc)
        return web.json_response(payload)

    async def audio(self, request: web.Request) -> web.Response:
        wav = self.service.audio.get(request.match_info["key"])
        if wav is None:
            return web.json_response({"error": "no such audio (expired)"}, status=404)
        return web.Response(body=wav, content_type="audio/wav")

    # -- sessions ----------------------------------------------------------------------------
    async def _json(self, request: web.Request) -> dict[str, Any]:
        try:
            data = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise ReadingError("the request body must be JSON") from exc
        if not isinstance(data, dict):
            raise ReadingError("the request body must be a JSON object")
        return data

    async def create_session(self, request: web.Request) -> web.Response:
        try:
            data = await self._json(request)
            book = str(data.get("book", ""))
            try:
                page = int(data.get("page", 1))
            except (TypeError, ValueError, OverflowError) as exc:  # a list, "x", NaN, 1e999
                raise ReadingError("'page' must be a page number, e.g. 1") from exc
            mode = str(data.get("mode", "i_read"))
            reader = data.get("reader") or None
            source = str(data.get("source", "page"))
            word = str(data["word"])[:64] if data.get("word") else None
            session = await asyncio.to_thread(self.service.open_session, book, page, mode,
                                              str(reader) if reader else None, source, word)
        except (ReadingError, BookError) as exc:
            return _error(exc)
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": f"bad session request: {exc}"}, status=400)
        payload = page_payload(session.book, session.number)
        if mode == "together":
            session.start_together()
        elif mode == "practice":
            session.start_practice()
        return web.json_response({"session": session.id, "mode": mode, "page": payload})

    def _session(self, request: web.Request):  # type: ignore[no-untyped-def]
        return self.service.get_session(request.match_info["sid"])

    async def events(self, request: web.Request) -> web.StreamResponse:
        try:
            session = self._session(request)
        except ReadingError as exc:
            return _error(exc)
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=4096)
        await ws.prepare(request)
        self._sockets.add(ws)
        loop = asyncio.get_running_loop()
        outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=500)

        def put(event: dict[str, Any] | None) -> None:
            if outbox.full():
                outbox.get_nowait()  # the page is slow: drop the oldest update
            outbox.put_nowait(event)

        def listener(event: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(put, event)

        def on_closed(_session: Any) -> None:
            try:
                loop.call_soon_threadsafe(put, None)  # end of the session: close the socket
            except RuntimeError:
                pass  # the loop is gone

        session.add_listener(listener)
        session.on_close.append(on_closed)
        if session.closed:
            # Closed on another thread (DELETE, another reader taking its place) since it was
            # looked up: its close hooks may have run before ours was added. close() marks
            # the session closed before it runs them, so one of the two ends this socket.
            put(None)

        async def pump() -> None:
            while True:
                event = await outbox.get()
                if event is None:
                    await ws.close()
                    return
                await ws.send_json(event)

        sender = asyncio.ensure_future(pump())
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self._sockets.discard(ws)
            sender.cancel()
            session.remove_listener(listener)
            if on_closed in session.on_close:
                session.on_close.remove(on_closed)
        return ws

    async def offer(self, request: web.Request) -> web.Response:
        """WebRTC: receive the page's microphone; audio frames feed the session."""
        from aiortc import RTCSessionDescription

        from passeur.telepresence.server import NEGOTIATION_ERRORS

        try:
            session = self._session(request)
            _must_listen(session, "a microphone")
            data = await self._json(request)
            if data.get("type") != "offer" or not isinstance(data.get("sdp"), str) or \
                    len(data["sdp"]) > 100_000:
                raise ReadingError("expected {'type': 'offer', 'sdp': '...'}")
        except ReadingError as exc:
            return _error(exc)
        previous = self._session_pcs.pop(session.id, None)
        if previous is not None:
            log.info("reader: a new microphone offer replaces session %s's connection",
                     session.id)
            old_pc, old_hook = previous
            if old_hook in session.on_close:
                session.on_close.remove(old_hook)
            self._pcs.discard(old_pc)
            await old_pc.close()
        pc = self.context.create_peer_connection()
        self._pcs.add(pc)
        loop = asyncio.get_running_loop()

        async def close_pc() -> None:
            self._pcs.discard(pc)
            if self._session_pcs.get(session.id, (None,))[0] is pc:
                del self._session_pcs[session.id]
            await pc.close()

        def start_closing() -> None:  # on the loop
            if pc in self._pcs:  # not closed meanwhile (by shutdown, a failure, a new offer)
                task = asyncio.ensure_future(close_pc())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

        def on_session_closed(_session: Any) -> None:
            # Any thread (delete, eviction, shutdown): close the connection on the loop. The
            # coroutine is made there, when the loop runs the callback: made here, it was
            # never awaited when the loop had stopped (the server shut down first, its
            # connections already closed) and Python warned "close_pc was never awaited".
            try:
                loop.call_soon_threadsafe(start_closing)
            except RuntimeError:
                pass  # the loop is closed: the server shut down and closed its connections

        session.on_close.append(on_session_closed)
        self._session_pcs[session.id] = (pc, on_session_closed)
        if session.closed:
            await close_pc()
            return _error(UnknownSession("the reading session was closed"))

        @pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind == "audio":
                task = asyncio.ensure_future(self._consume(track, session))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await close_pc()

        async def refuse(why: str) -> web.Response:
            if on_session_closed in session.on_close:  # a newer offer may have taken it out
                session.on_close.remove(on_session_closed)
            await close_pc()
            return _error(ReadingError(f"the microphone offer could not be used (bad SDP{why})"))

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=data["sdp"], type="offer"))
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except NEGOTIATION_ERRORS as exc:
            log.warning("reader: refused an offer: %s: %s", type(exc).__name__, str(exc)[:200])
            return await refuse("")
        # An offer without an audio section the page sends on (bare "v=0", data channel only,
        # recvonly) negotiates fine but gives the session nothing to listen to.
        if not any(t.kind == "audio" and t.currentDirection in ("recvonly", "sendrecv")
                   for t in pc.getTransceivers()):
            log.warning("reader: refused an offer with no audio from the page")
            return await refuse(": no audio section the page sends its microphone on")
        return web.json_response({"sdp": pc.localDescription.sdp,
                                  "type": pc.localDescription.type})

    async def _consume(self, track: Any, session: Any) -> None:
        """Hand each WebRTC audio frame to the session as it is (cheap: no resampling on the
        loop; the session's listening thread resamples with a stateful resampler)."""
        from aiortc.mediastreams import MediaStreamError

        while not session.closed:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            samples = frame.to_ndarray()
            channels = len(frame.layout.channels)
            # Packed formats come as (1, n * channels), planar ones as (channels, n).
            data = samples.reshape(-1, channels) if samples.shape[0] == 1 else samples.T
            # A copy: the frame's buffer is not ours once the next frame is received.
            session.push_audio(np.array(data, copy=True), frame.sample_rate)
        track.stop()

    async def upload_audio(self, request: web.Request) -> web.Response:
        """A whole recording as a WAV body (no WebRTC): fed as if live, then finished. A body
        is held whole (up to MAX_BODY) until decoded, and the API is public: at most
        max_sessions uploads are read at once, whatever the sessions they name."""
        if self._uploads >= self.service.config.max_sessions:
            log.warning("reader: refused an upload: %d already in progress", self._uploads)
            return web.json_response({"error": "too many uploads at once; try again in a "
                                               "moment"}, status=503,
                                     headers={"Retry-After": "5"})
        self._uploads += 1
        try:
            return await self._upload_audio(request)
        finally:
            self._uploads -= 1

    async def _upload_audio(self, request: web.Request) -> web.Response:
        import io

        from passeur.reading.audio_in import is_silent, read_wav

        try:
            session = self._session(request)
            # Answered 200 and then dropped, the recording would never be scored; refused
            # before its body is read.
            _must_listen(session, "a recording")
            chunks: list[bytes] = []
            size = 0
            while True:
                chunk = await request.content.read(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_BODY:
                    raise RecordingTooLong(f"recording too large ({MAX_BODY // 2**20} MB max)")
                chunks.append(chunk)
            body = b"".join(chunks)
            if not body:
                raise AudioFormatError("empty request body: send a WAV file")
            tmp = io.BytesIO(body)
            pcm = await asyncio.to_thread(read_wav, tmp)
            if is_silent(pcm):
                raise AudioFormatError("the recording is silent: nothing was heard")
            duration_s = len(pcm) / 16000
            room_s = session.queue_room_s()
            if duration_s > room_s:
                raise RecordingTooLong(
                    f"recording too long: {duration_s:.0f} s, this session accepts "
                    f"{room_s:.0f} s more ({MAX_QUEUED_S:.0f} s at most); cut it into pages")
        except ReadingError as exc:
            return _error(exc)
        for chunk in frames(pcm):
            session.push_frame(chunk, live=False)
        return web.json_response({"queued_s": round(len(pcm) / 16000, 2)})

    async def finish(self, request: web.Request) -> web.Response:
        try:
            session = self._session(request)
            await self._decoded_so_far(session)
            # ?quiet=1: the page left the reading (another page, book or mode): no words
            # from the robot about it.
            announce = request.query.get("quiet") != "1"
            payload = await asyncio.to_thread(session.finish, announce)
        except ReadingError as exc:
            return _error(exc)
        return web.json_response(payload)

    async def _decoded_so_far(self, session: Any) -> None:
        """Wait until the audio queued before now is taken in by the recogniser. Audio that
        keeps streaming in (the robot's microphone, a page whose connection is still open)
        is not waited for; nor is a recogniser that stopped, or that took nothing in for
        FINISH_STALL_S; nor anything once the server shuts down."""
        loop = asyncio.get_running_loop()
        mark = session.audio_mark()
        progress, since = session.decoded_items, loop.time()
        while not (session.decoded(mark) or self._stopping):
            if session.decoded_items != progress:
                progress, since = session.decoded_items, loop.time()
            elif loop.time() - since > FINISH_STALL_S:
                log.warning("reader: session %s took in no audio for %.0f s: scoring what was "
                            "heard (%d of %d audio items)", session.id, FINISH_STALL_S,
                            progress, mark)
                return
            await asyncio.sleep(0.05)

    async def delete_session(self, request: web.Request) -> web.Response:
        await asyncio.to_thread(self.service.close_session, request.match_info["sid"])
        return web.json_response({"ok": True})

    async def playback(self, request: web.Request) -> web.Response:
        """The page starts/ends playing robot speech on its own speaker: the microphones are
        gated and speech/speaking is true meanwhile (bounded by the audio's duration)."""
        try:
            data = await self._json(request)
            payload = self.service.page_playback(str(data.get("audio", ""))[:32],
                                                 str(data.get("state", ""))[:8])
        except ReadingError as exc:
            return _error(exc)
        return web.json_response(payload)

    async def say(self, request: web.Request) -> web.Response:
        await self.context.require_staff(request)
        try:
            data = await self._json(request)
            key = self.service.say(str(data.get("text", "")), str(data.get("lang", "fr")))
        except ReadingError as exc:
            return _error(exc)
        return web.json_response({"audio": key})
