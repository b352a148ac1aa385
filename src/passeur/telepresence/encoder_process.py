"""The shared video encoder's work (yuv420p conversion, frame stamp, VP8/H264 encoding) in a
process of its own.

Why: PyAV holds the GIL while libvpx or x264 encode. Measured here, a 640x480 VP8 frame takes
3.5 ms (9 ms for a keyframe) and, done in the server's process, delays the asyncio loop, and
with it every driving command that arrives meanwhile, by as much. In a child process the
encoding runs on the other core in parallel and the loop never waits for it. The encoder
thread (`video.SharedEncoder`) sends each image over a pipe and waits for the packet; both
release the GIL.

The child is `python -m passeur.telepresence.encoder_process CODEC BITRATE`. It exits when its
stdin closes, which is also what happens when the server dies, however it dies.

Protocol, native byte order, one request in flight:
- child -> parent once started: READY;
- request: REQUEST header (width, height, counter, pts, flags) then width * height * 3 bytes of
  rgb24;
- reply: REPLY header (status, flags, length) then `length` bytes: the packet (status OK, flag
  KEYFRAME when it is one) or a UTF-8 error message (status ERROR; the child goes on).
"""

from __future__ import annotations

import logging
import os
import select
import struct
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

import numpy as np

from passeur.telepresence.exceptions import TelepresenceError

log = logging.getLogger(__name__)

READY = b"PVE1"
REQUEST = struct.Struct("=IIqqI")  # width, height, counter, pts, flags
REPLY = struct.Struct("=III")  # status, flags, length
FLAG_KEYFRAME = 1
FLAG_STAMP = 2
STATUS_OK = 0
STATUS_ERROR = 1
#: Largest image accepted (8K rgb24): a corrupt header must not make the child allocate GBs.
MAX_PIXELS = 7680 * 4320


class EncoderProcessError(TelepresenceError):
    """The encoder process could not be started, died, or stopped answering."""


def _read_exact(fd: int, n: int, timeout_s: float | None = None) -> bytes:
    """n bytes from `fd`; EncoderProcessError on end of file or when nothing comes within
    timeout_s (None: wait for ever)."""
    chunks: list[bytes] = []
    left = n
    while left:
        if timeout_s is not None:
            ready, _w, _x = select.select([fd], [], [], timeout_s)
            if not ready:
                raise EncoderProcessError(f"no answer within {timeout_s:g} s")
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EncoderProcessError("end of file")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data).cast("B")
    while view:
        written = os.write(fd, view)
        view = view[written:]


class EncoderProcess:
    """Parent side: one child process, used from one thread (the encoder thread)."""

    def __init__(self, codec: str, bitrate_bps: int, start_timeout_s: float = 20.0,
                 reply_timeout_s: float = 5.0) -> None:
        self.reply_timeout_s = reply_timeout_s
        env = dict(os.environ)
        # The child must find this package even when the parent put it on sys.path itself.
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        try:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-m", "passeur.telepresence.encoder_process", codec,
                 str(int(bitrate_bps))],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0,
                close_fds=True)
        except OSError as exc:
            raise EncoderProcessError(f"cannot start the video encoder process: {exc}") from exc
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._in = self._proc.stdin.fileno()
        self._out = self._proc.stdout.fileno()
        try:
            hello = _read_exact(self._out, len(READY), start_timeout_s)
        except EncoderProcessError as exc:
            self.close()
            raise EncoderProcessError(f"the video encoder process did not start ({exc})") \
                from exc
        if hello != READY:
            self.close()
            raise EncoderProcessError(f"the video encoder process said {hello!r}, not ready")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def encode(self, rgb: np.ndarray, counter: int, pts: int, keyframe: bool,
               stamp: bool) -> tuple[bytes, bool]:
        """(packet, is keyframe) for one rgb24 image. ValueError: the child could not encode
        this image (it goes on); EncoderProcessError: the child is gone or stuck (closed)."""
        if self._proc is None:
            raise EncoderProcessError("the video encoder process is closed")
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an rgb24 image (h, w, 3) uint8, got {rgb.shape} "
                             f"{rgb.dtype}")
        height, width = int(rgb.shape[0]), int(rgb.shape[1])
        flags = (FLAG_KEYFRAME if keyframe else 0) | (FLAG_STAMP if stamp else 0)
        try:
            _write_all(self._in, REQUEST.pack(width, height, counter, pts, flags))
            _write_all(self._in, np.ascontiguousarray(rgb).data)
            status, out_flags, length = REPLY.unpack(
                _read_exact(self._out, REPLY.size, self.reply_timeout_s))
            body = _read_exact(self._out, length, self.reply_timeout_s)
        except (OSError, EncoderProcessError) as exc:
            code = self._proc.poll()
            self.close()
            state = f"exited with code {code}" if code is not None else "stopped answering"
            raise EncoderProcessError(f"the video encoder process {state} ({exc})") from exc
        if status != STATUS_OK:
            raise ValueError(body.decode("utf-8", "replace"))
        return body, bool(out_flags & FLAG_KEYFRAME)

    def close(self) -> None:
        """Stop the child (end of its input, then a kill if it lingers). Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=2.0)


def serve(codec: str, bitrate_bps: int, stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Child side: answer requests until stdin ends. Returns the exit code."""
    import fractions

    import av

    from passeur.telepresence.video import VIDEO_CLOCK_RATE, VideoCodec, draw_stamp, rgb_to_frame

    time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
    encoder = VideoCodec(codec, bitrate_bps)
    fd_in, fd_out = stdin.fileno(), stdout.fileno()
    _write_all(fd_out, READY)
    while True:
        try:
            header = _read_exact(fd_in, REQUEST.size)
        except EncoderProcessError:
            return 0  # the server closed our input: done
        width, height, counter, pts, flags = REQUEST.unpack(header)
        if not (0 < width and 0 < height and width * height <= MAX_PIXELS):
            # The stream cannot be resynchronised after a bad header: stop.
            print(f"encoder_process: bad request header {width}x{height}", file=sys.stderr)
            return 2
        data = _read_exact(fd_in, width * height * 3)
        rgb = np.frombuffer(data, np.uint8).reshape(height, width, 3)
        try:
            if flags & FLAG_STAMP:
                rgb = rgb.copy()
                draw_stamp(rgb, counter)
            frame = rgb_to_frame(rgb)
            frame.pts = pts
            frame.time_base = time_base
            packet, keyframe = encoder.encode(frame, bool(flags & FLAG_KEYFRAME))
        except (av.error.FFmpegError, ValueError) as exc:
            message = f"{type(exc).__name__}: {exc}".encode()
            _write_all(fd_out, REPLY.pack(STATUS_ERROR, 0, len(message)) + message)
            continue
        _write_all(fd_out, REPLY.pack(STATUS_OK, FLAG_KEYFRAME if keyframe else 0, len(packet)))
        _write_all(fd_out, packet)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("VP8", "H264") or not args[1].isdigit():
        print("usage: python -m passeur.telepresence.encoder_process VP8|H264 BITRATE_BPS",
              file=sys.stderr)
        return 2
    try:
        return serve(args[0], int(args[1]), sys.stdin.buffer, sys.stdout.buffer)
    except (BrokenPipeError, KeyboardInterrupt):
        return 0


if __name__ == "__main__":
    sys.exit(main())
