"""One shared camera source for every viewer.

Shared encoder (the default): each camera image goes straight from the caller's thread (the
ROS executor's) to one encoder thread, which keeps only the newest image, stamps and converts
it to yuv420p, encodes it once (VP8 or H264) and hands the packet to the asyncio loop, where
every viewer's sender packetizes the same bytes. Nothing about a frame waits on the loop
before it is encoded, and an image the encoder is too busy for is never converted.

Per-viewer encoders (`shared_encoder: False`): each image is converted ONCE to a yuv420p
`av.VideoFrame` in the caller's thread, then handed to the loop, where a single `CameraTrack`
yields only the newest frame; `aiortc.contrib.media.MediaRelay(buffered=False)` fans it out to
every viewer's encoder. (Sharing bgr24 frames across VP8 encoders crashed aiortc here; yuv420p
from the source does not: see ENVIRONMENT.md.) Either way a slow viewer skips frames instead
of building a backlog.

Optionally a frame counter is drawn as a small binary code in the top-left corner so that a
browser can tell which frame it displays (latency benchmark); `decode_stamp` reads it back.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from passeur.telepresence.packet_track import PacketTrack
from passeur.telepresence.priority import set_thread_nice

log = logging.getLogger(__name__)

VIDEO_CLOCK_RATE = 90_000
MIN_KEYFRAME_GAP_S = 0.3
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)

#: Frame stamp layout: STAMP_BITS cells of STAMP_CELL px, STAMP_COLS per row, from (0, 0).
STAMP_BITS = 20
STAMP_COLS = 10
STAMP_CELL = 16


def draw_stamp(rgb: np.ndarray, counter: int) -> None:
    """Write `counter` (mod 2**STAMP_BITS) into the top-left corner, white = 1, in place."""
    value = counter % (1 << STAMP_BITS)
    for bit in range(STAMP_BITS):
        row, col = divmod(bit, STAMP_COLS)
        y, x = row * STAMP_CELL, col * STAMP_CELL
        rgb[y:y + STAMP_CELL, x:x + STAMP_CELL] = 255 if (value >> bit) & 1 else 0


def decode_stamp(rgb: np.ndarray) -> int:
    """Read back a counter drawn by draw_stamp (from a decoded, possibly lossy, frame)."""
    value = 0
    half = STAMP_CELL // 2
    for bit in range(STAMP_BITS):
        row, col = divmod(bit, STAMP_COLS)
        cell = rgb[row * STAMP_CELL + half - 2:row * STAMP_CELL + half + 2,
                   col * STAMP_CELL + half - 2:col * STAMP_CELL + half + 2]
        if float(cell.mean()) > 127:
            value |= 1 << bit
    return value


def rgb_to_frame(rgb: np.ndarray) -> av.VideoFrame:
    """rgb24 array (h, w, 3) to a yuv420p frame (even dimensions required by the encoders)."""
    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        rgb = rgb[: h - h % 2, : w - w % 2]
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return frame.reformat(format="yuv420p")


class CameraSource:
    """Thread-safe entry point for camera images; owns the shared track.

    `push_rgb()` may be called from any thread; the loop only ever sees finished frames.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, stamp: bool = False,
                 history: int = 2000) -> None:
        self._loop = loop
        self.stamp = stamp
        self.track = CameraTrack()
        self._counter = 0
        self._lock = threading.Lock()
        #: counter -> wall time (time.time()) at which the image reached the source.
        self.stamp_times: dict[int, float] = {}
        self._stamp_order: deque[int] = deque()
        self._history = history
        self.frames_in = 0
        self.size: tuple[int, int] | None = None  # (width, height)
        self._latest_rgb: np.ndarray | None = None
        #: Number of connected viewers (set by the server): no conversion work without any.
        self.viewers = 0
        #: Takes (image, counter, arrival) instead of the track (the shared encoder).
        self._sink: Callable[[np.ndarray, int, float], None] | None = None

    def set_sink(self, sink: Callable[[np.ndarray, int, float], None] | None) -> None:
        """Hand images to `sink` (any thread, must not block) instead of converting them for
        the track."""
        self._sink = sink

    def make_frame(self, rgb: np.ndarray, counter: int) -> av.VideoFrame:
        """The yuv420p frame for an image, stamped with `counter` when stamping is on."""
        if self.stamp:
            rgb = rgb.copy()
            draw_stamp(rgb, counter)
        return rgb_to_frame(rgb)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def latest_rgb(self) -> np.ndarray | None:
        with self._lock:
            return self._latest_rgb

    def push_rgb(self, rgb: np.ndarray, arrival_wall_s: float | None = None) -> int:
        """Convert and publish one frame; returns its counter."""
        arrival = time.time() if arrival_wall_s is None else arrival_wall_s
        with self._lock:
            self._counter += 1
            counter = self._counter
            self.frames_in += 1
            self._latest_rgb = rgb
            self.size = (int(rgb.shape[1]), int(rgb.shape[0]))
            if self.stamp:
                self.stamp_times[counter % (1 << STAMP_BITS)] = arrival
                self._stamp_order.append(counter % (1 << STAMP_BITS))
                while len(self._stamp_order) > self._history:
                    self.stamp_times.pop(self._stamp_order.popleft(), None)
        if self.viewers <= 0:
            return counter
        sink = self._sink
        if sink is not None:
            sink(rgb, counter, arrival)
            return counter
        frame = self.make_frame(rgb, counter)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self.track.put, frame, arrival)
            except RuntimeError:
                pass  # loop closing
        return counter

    def close(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self.track.stop)
            except RuntimeError:
                pass


class CameraTrack(MediaStreamTrack):
    """Yields the newest frame only; timestamps from a monotonic 90 kHz clock."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._frame: av.VideoFrame | None = None
        self._event: asyncio.Event | None = None
        self._start: float | None = None
        self._last_pts = -1
        self._frame_arrival = 0.0
        self.last_arrival_wall_s = 0.0
        self.frames_out = 0

    def _ensure_event(self) -> asyncio.Event:
        if self._event is None:
            self._event = asyncio.Event()
        return self._event

    def put(self, frame: av.VideoFrame, arrival_wall_s: float = 0.0) -> None:
        """Loop thread only."""
        self._frame = frame  # a newer frame replaces an unread one
        self._frame_arrival = arrival_wall_s
        self._ensure_event().set()

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        event = self._ensure_event()
        await event.wait()
        event.clear()
        if self.readyState != "live" or self._frame is None:
            raise MediaStreamError
        frame, self._frame = self._frame, None
        #: wall time at which the frame being returned reached the source (benchmarks)
        self.last_arrival_wall_s = self._frame_arrival
        now = time.monotonic()
        if self._start is None:
            self._start = now
        pts = int((now - self._start) * VIDEO_CLOCK_RATE)
        if pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = VIDEO_TIME_BASE
        self.frames_out += 1
        return frame

    def stop(self) -> None:
        super().stop()
        if self._event is not None:
            self._event.set()


class SharedEncoder:
    """Encode the camera ONCE for every viewer (VP8 or H264) and hand each viewer's sender the
    same compressed packets (aiortc packetizes pre-encoded `av.Packet`s without re-encoding).

    Per-viewer encoders cost ~10 % of a core each at 640x480@30; this costs one encoder in
    total. The encoder has its own thread, fed directly by `CameraSource` (newest image only),
    and the loop only sees finished packets. The yuv420p conversion releases the GIL, and so
    does PyAV 18's encode (avcodec_send_frame/receive_packet run without it; measured
    2026-12-07: a thread encoding 640x480 VP8 flat out, 2.6 ms a frame, delays a 2 ms sleep
    on another thread by 1.9 ms at p99, a pure-Python busy thread by 7.5 ms; an earlier note
    here said the encode held the GIL). Encoding in a child process was measured
    (2026-12-02, 2 cores shared with the browsers) and did not shorten the command latency
    tail: the pipe copies and the extra process cost as much as the GIL did. Not kept.
    Trade-offs: one bitrate for everybody (no per-viewer adaptation, fine on a LAN), and a
    viewer that falls behind or joins late waits for a keyframe: one is forced for every new
    viewer and sent at least every `keyframe_interval_s`.
    """

    def __init__(self, source: CameraSource, codec: str = "VP8", bitrate_bps: int = 1_200_000,
                 keyframe_interval_s: float = 1.0, thread_nice: int = 0) -> None:
        if codec not in ("VP8", "H264"):
            raise ValueError(f"unsupported codec {codec}")
        self.source = source
        self.codec_name = codec
        self.bitrate_bps = bitrate_bps
        self.keyframe_interval_s = keyframe_interval_s
        self.thread_nice = thread_nice
        self._ctx: Any = None
        self._size: tuple[int, int] | None = None
        self._subscribers: set[EncodedTrack] = set()
        self._force_keyframe = True
        self._last_keyframe = -1e9
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = threading.Condition()
        self._pending: tuple[np.ndarray, int, float] | None = None
        self._closed = False
        # One thread: a codec context must not be used concurrently.
        self._thread: threading.Thread | None = None
        self._start: float | None = None
        self._last_pts = -1
        self.frames_encoded = 0
        self.keyframes = 0
        self.skipped = 0  # images replaced by a newer one before the encoder got to them
        #: camera image arrival -> encoded packet handed to the senders, ms (benchmarks)
        self.server_latency_ms: deque[float] = deque(maxlen=5000)

    def subscribe(self) -> EncodedTrack:
        """Loop thread only."""
        self._loop = asyncio.get_running_loop()
        track = EncodedTrack(self)
        self._subscribers.add(track)
        self._force_keyframe = True
        if (self._thread is None or not self._thread.is_alive()) and not self._closed:
            self._thread = threading.Thread(target=self._run, name="video-encoder", daemon=True)
            self._thread.start()
        self.source.set_sink(self.feed)
        return track

    def unsubscribe(self, track: EncodedTrack) -> None:
        self._subscribers.discard(track)

    def request_keyframe(self) -> None:
        self._force_keyframe = True

    def feed(self, rgb: np.ndarray, counter: int, arrival_wall_s: float) -> None:
        """Any thread; never blocks: a newer image replaces one not yet encoded."""
        with self._wake:
            if self._pending is not None:
                self.skipped += 1
            self._pending = (rgb, counter, arrival_wall_s)
            self._wake.notify()

    def _open(self, width: int, height: int) -> Any:
        if self.codec_name == "VP8":
            ctx = av.CodecContext.create("libvpx", "w")
            ctx.options = {"cpu-used": "-6", "deadline": "realtime", "lag-in-frames": "0",
                           "bufsize": str(self.bitrate_bps), "minrate": str(self.bitrate_bps),
                           "maxrate": str(self.bitrate_bps), "static-thresh": "1",
                           "undershoot-pct": "100", "overshoot-pct": "15", "partitions": "0",
                           "noise-sensitivity": "4"}
            ctx.qmin, ctx.qmax = 2, 56
        else:
            ctx = av.CodecContext.create("libx264", "w")
            ctx.options = {"level": "31", "tune": "zerolatency", "preset": "veryfast"}
            ctx.profile = "Baseline"
        ctx.width, ctx.height = width, height
        ctx.pix_fmt = "yuv420p"
        ctx.bit_rate = self.bitrate_bps
        ctx.time_base = VIDEO_TIME_BASE
        ctx.framerate = fractions.Fraction(30, 1)
        ctx.gop_size = 3000  # keyframes are forced explicitly
        # One thread: measured here, libvpx with 2 threads on 2 busy cores took 10x the CPU.
        ctx.thread_count = 1
        return ctx

    def _encode(self, frame: av.VideoFrame, keyframe: bool) -> bytes:
        size = (frame.width, frame.height)
        if self._ctx is None or size != self._size:
            self._ctx, self._size = self._open(*size), size
            keyframe = True
        frame.pict_type = av.video.frame.PictureType.I if keyframe else \
            av.video.frame.PictureType.NONE
        return b"".join(bytes(p) for p in self._ctx.encode(frame))

    def _next_pts(self) -> int:
        now = time.monotonic()
        if self._start is None:
            self._start = now
        pts = max(int((now - self._start) * VIDEO_CLOCK_RATE), self._last_pts + 1)
        self._last_pts = pts
        return pts

    def _run(self) -> None:
        """Encoder thread."""
        set_thread_nice(self.thread_nice)  # explicit: a real-time loop thread's is not inherited
        while True:
            with self._wake:
                while self._pending is None and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                rgb, counter, arrival = self._pending  # type: ignore[misc]
                self._pending = None
            if not self._subscribers:
                continue
            try:
                frame = self.source.make_frame(rgb, counter)
                frame.pts = self._next_pts()
                frame.time_base = VIDEO_TIME_BASE
                now = time.monotonic()
                since = now - self._last_keyframe
                # Requested keyframes are rate-limited: under CPU pressure, viewers falling
                # behind must not turn the stream into keyframes only (bigger, slower: a
                # vicious circle).
                keyframe = (self._force_keyframe and since >= MIN_KEYFRAME_GAP_S) \
                    or since >= self.keyframe_interval_s
                if keyframe:
                    self._force_keyframe = False
                data = self._encode(frame, keyframe)
            except (av.error.FFmpegError, ValueError):
                log.exception("video encoding failed; dropping the frame")
                continue
            if not data:
                continue
            if keyframe:
                self._last_keyframe = now
                self.keyframes += 1
            packet = av.Packet(data)
            packet.pts = frame.pts
            packet.time_base = VIDEO_TIME_BASE
            loop = self._loop
            if loop is None or loop.is_closed():
                continue
            try:
                loop.call_soon_threadsafe(self._deliver, packet, keyframe, arrival)
            except RuntimeError:
                return  # loop closing

    def _deliver(self, packet: av.Packet, keyframe: bool, arrival_wall_s: float) -> None:
        """Loop thread."""
        self.server_latency_ms.append(1000.0 * (time.time() - arrival_wall_s))
        self.frames_encoded += 1
        for track in list(self._subscribers):
            track.put(packet, keyframe)

    def close(self) -> None:
        """Stop every viewer's track and the encoder thread. Safe to call twice."""
        self.source.set_sink(None)
        for track in list(self._subscribers):
            track.stop()
        with self._wake:
            self._closed = True
            self._wake.notify()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(2.0)


class EncodedTrack(PacketTrack):
    """One viewer's view of the shared encoded stream. Keeps at most a few packets; a viewer
    that falls behind drops to the next keyframe instead of building a backlog."""

    kind = "video"
    MAX_QUEUE = 5
    _encoder: SharedEncoder

    def __init__(self, encoder: SharedEncoder) -> None:
        super().__init__(encoder)
        self._wait_keyframe = True

    def put(self, packet: Any, keyframe: bool) -> None:
        if packet is not None:
            if self._wait_keyframe and not keyframe:
                self.dropped += 1
                return
            self._wait_keyframe = False
            if len(self._queue) >= self.MAX_QUEUE:
                # Behind: a P-frame stream cannot skip frames, so start again from a keyframe.
                self.dropped += len(self._queue)
                self._queue.clear()
                self._wait_keyframe = True
                self._encoder.request_keyframe()
                return
        self._push(packet)
