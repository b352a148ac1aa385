"""Camera frames rendered in a child process (its own GIL). No rclpy here.

Why: in the stack, every MuJoCo/OpenGL call of a render thread (mjv_updateScene, mjr_render,
mjr_readPixels) releases the GIL, and taking it back waits for the physics thread and the
ROS executor threads: a frame that costs ~3.3 ms alone took 6-7 ms in the render thread.
A child process renders with a GIL nobody else wants; the parent pays one GIL round trip per
frame (its receiver thread coming back from the pipe) instead of several.

Same contract as `simulator._RenderWorker`: frames come out in order, none is dropped, each
is rendered from its own tick's state, at most `FRAMES_IN_FLIGHT` are outstanding, and
`on_image(t, rgb)` runs in a thread of this process (the receiver) with `rgb` a view of a
shared-memory slot, valid until the callback returns.

How: the child is started with the `spawn` context (never fork: the parent has ROS and
MuJoCo threads), unpickles the compiled MjModel (MuJoCo's binary model: the very model the
simulator built, clip planes included), and makes its own OpenGL context. One shared-memory
segment holds a state slot and an image slot per frame in flight. The parent writes the tick's
state (qpos, mocap poses) into a free slot and the slot number into a pipe; the child rebuilds
the scene (`render_state`: kinematics from qpos, so the frame shows the state at its tick),
reads the pixels straight into the slot's image and answers with the slot number.

As with any `spawn` child, the child imports the parent's main module (as `__mp_main__`):
a script that starts a simulator must do so under `if __name__ == "__main__":`.
A frame shows the kinematics of its tick's qpos; the render thread shows those of the last
physics step's start (MuJoCo's mj_step computes positions before it integrates), 2 ms
earlier: on the same MjData the two give the same image (tests/integration/
test_sim_render_process.py).
"""

from __future__ import annotations

import atexit
import collections
import ctypes
import logging
import multiprocessing
import os
import signal
import struct
import threading
import time
from collections.abc import Callable
from multiprocessing import shared_memory
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from passeur.errors import ConfigError, PasseurError

if TYPE_CHECKING:
    from passeur.sim.simulator import LoopStats, Simulator

log = logging.getLogger(__name__)

#: Parent -> child: slot number (STOP: render what is queued, then exit).
_REQUEST = struct.Struct("<i")
_STOP = -1
#: Child -> parent: b"R" ready; b"D" + slot + render time (s); b"E" + kind + message.
_DONE = struct.Struct("<cid")
_FIX = ("set the sim parameter render_process to false to render in a thread of the "
        "simulator's own process")


class RenderProcessError(PasseurError):
    """The camera's render process failed or died."""


def render_state(mj: Any, model: Any, data: Any) -> None:
    """Positions a frame needs from `data.qpos` and `data.mocap_*`: bodies, geoms, cameras
    and lights (what mj_forward computes first, without collisions and dynamics)."""
    mj.mj_kinematics(model, data)
    mj.mj_comPos(model, data)
    mj.mj_camlight(model, data)


def _layout(model: Any, slots: int, width: int, height: int) -> tuple[int, int, int]:
    """(float64 values per state slot, bytes of the state area, bytes in all)."""
    state_len = int(model.nq) + 7 * int(model.nmocap)
    state_bytes = slots * state_len * 8
    return state_len, state_bytes, state_bytes + slots * height * width * 3


class _Slots:
    """Numpy views of the shared segment: per slot qpos, mocap_pos, mocap_quat, image (bottom
    row first, as OpenGL reads it)."""

    def __init__(self, buf: Any, model: Any, slots: int, width: int, height: int) -> None:
        nq, nmocap = int(model.nq), int(model.nmocap)
        state_len, state_bytes, _ = _layout(model, slots, width, height)
        states = np.ndarray((slots, state_len), dtype=np.float64, buffer=buf)
        self.qpos = [states[i, :nq] for i in range(slots)]
        self.mocap_pos = [states[i, nq:nq + 3 * nmocap].reshape(nmocap, 3) for i in range(slots)]
        self.mocap_quat = [states[i, nq + 3 * nmocap:].reshape(nmocap, 4) for i in range(slots)]
        images = np.ndarray((slots, height, width, 3), dtype=np.uint8, buffer=buf,
                            offset=state_bytes)
        self.images = [images[i] for i in range(slots)]


def _child_main(model: Any, camera_id: int, width: int, height: int, shm_name: str,
                slots: int, requests: Connection, results: Connection) -> None:
    """The render process: one frame per request, in order, until STOP or the parent goes."""
    # Ctrl-C, and the SIGTERM of `timeout` or systemd's stop, reach the whole process group:
    # the parent stops us in order (STOP, or EOF; SIGKILL if we do not exit).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    import mujoco

    from passeur.sim.camera import OffscreenCamera

    shm: shared_memory.SharedMemory | None = None
    camera: OffscreenCamera | None = None
    views: _Slots | None = None
    try:
        shm = shared_memory.SharedMemory(name=shm_name)
        views = _Slots(shm.buf, model, slots, width, height)
        data = mujoco.MjData(model)
        camera = OffscreenCamera(model, camera_id, width, height)
        results.send_bytes(b"R")
        fd = requests.fileno()
        while True:
            raw = _read_exactly(fd, _REQUEST.size)
            if raw is None:
                return  # the parent is gone
            (slot,) = _REQUEST.unpack(raw)
            if slot == _STOP:
                return
            a = time.perf_counter()
            data.qpos[:] = views.qpos[slot]
            data.mocap_pos[:] = views.mocap_pos[slot]
            data.mocap_quat[:] = views.mocap_quat[slot]
            render_state(mujoco, model, data)
            camera.update(model, data)
            camera.render(into=views.images[slot])
            results.send_bytes(_DONE.pack(b"D", slot, time.perf_counter() - a))
    except BaseException as exc:  # reported to the parent, which raises it in the loop
        kind = b"C" if isinstance(exc, ConfigError) else b"X"
        try:
            results.send_bytes(b"E" + kind + f"{type(exc).__name__}: {exc}".encode())
        except OSError:
            pass
        if not isinstance(exc, (ConfigError, KeyboardInterrupt)):
            raise
    finally:
        if camera is not None:
            camera.close()
        views = None
        if shm is not None:
            shm.close()


def _read_exactly(fd: int, n: int) -> bytes | None:
    out = b""
    while len(out) < n:
        chunk = os.read(fd, n - len(out))
        if not chunk:
            return None
        out += chunk
    return out


def _gil_keeping_write() -> Callable[[int, bytes], int] | None:
    """libc's write(2) called without releasing the GIL (ctypes.PyDLL): the loop thread
    writes a 4-byte request into a pipe with room to spare, which never blocks, and re-taking
    the GIL after os.write would wait for the other threads (the reason for this module)."""
    try:
        libc = ctypes.PyDLL(None, use_errno=True)
        write = libc.write
    except (OSError, AttributeError):
        return None
    write.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
    write.restype = ctypes.c_ssize_t

    def call(fd: int, payload: bytes) -> int:
        n = int(write(fd, payload, len(payload)))
        if n < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return n

    return call


class ProcessRenderWorker:
    """`_RenderWorker`'s contract with the rendering in a child process (see the module)."""

    FRAMES_IN_FLIGHT = 2
    #: Longest wait for the child to exit at close before it is killed.
    CLOSE_TIMEOUT_S = 5.0
    #: Longest wait for the child to say it is ready (it takes 0.3-0.5 s here: interpreter,
    #: MuJoCo, OpenGL context); past it the loop stops with an error instead of hanging.
    STARTUP_TIMEOUT_S = 60.0

    def __init__(self, sim: Simulator, on_image: Callable[[float, npt.NDArray[np.uint8]], None]
                 | None, stats: LoopStats, stop: threading.Event, name: str) -> None:
        self.sim = sim
        self.on_image = on_image
        self.stats = stats
        self._stop = stop
        self.error: BaseException | None = None
        #: The child's exit code once closed (None: still running, or never started).
        self.exitcode: int | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._free: collections.deque[int] = collections.deque(range(self.FRAMES_IN_FLIGHT))
        self._slot_t = [0.0] * self.FRAMES_IN_FLIGHT
        self._write = _gil_keeping_write() or os.write
        model = sim.model
        r = sim.robot
        width, height = r.camera_width, r.camera_height
        _, _, size = _layout(model, self.FRAMES_IN_FLIGHT, width, height)
        self._shm: shared_memory.SharedMemory | None = shared_memory.SharedMemory(
            create=True, size=size)
        self._process: Any = None
        self._requests_w: Connection | None = None
        self._results_r: Connection | None = None
        try:
            self._views: _Slots | None = _Slots(self._shm.buf, model, self.FRAMES_IN_FLIGHT,
                                                width, height)
            ctx = multiprocessing.get_context("spawn")
            requests_r, self._requests_w = ctx.Pipe(duplex=False)
            self._results_r, results_w = ctx.Pipe(duplex=False)
            self._process = ctx.Process(
                target=_child_main, name=f"{name}-render", daemon=True,
                args=(model, sim.built.camera, width, height, self._shm.name,
                      self.FRAMES_IN_FLIGHT, requests_r, results_w))
            self._process.start()
            # Our copies of the child's ends: closing them lets EOF say the child is gone.
            requests_r.close()
            results_w.close()
            # The child ignores SIGTERM, so multiprocessing's own clean-up at exit (terminate,
            # then join without a timeout) would wait for ever on a worker nobody closed (a
            # script that ends on an exception): close it first (atexit runs in reverse order
            # of registration, so this runs before multiprocessing's).
            atexit.register(self.close)
        except BaseException:
            self.close()
            raise
        self._thread = threading.Thread(target=self._receive, name=f"{name}-render",
                                        daemon=True)
        self._thread.start()

    def submit(self, t: float) -> None:
        """Loop thread: render the state as it is now, stamped `t`."""
        a = time.perf_counter()
        with self._cond:
            if self._closed:
                raise RenderProcessError("submit() after close()")
            while not self._free and not self._stop.is_set() and self.error is None:
                self._cond.wait(0.05)
            if self.error is not None:
                raise self.error
            self.stats.render_wait_s += time.perf_counter() - a
            if not self._free:
                return  # stopping
            slot = self._free.popleft()
        views = self._views
        assert views is not None and self._requests_w is not None
        self.sim.copy_render_state(views.qpos[slot], views.mocap_pos[slot],
                                   views.mocap_quat[slot])
        self._slot_t[slot] = t
        try:
            self._write(self._requests_w.fileno(), _REQUEST.pack(slot))
        except OSError as exc:  # the child is gone: the receiver says why
            self._fail(RenderProcessError(f"the camera render process is gone ({exc}); "
                                          f"{_FIX}"))
            raise self.error from exc  # type: ignore[misc]

    def _fail(self, exc: BaseException) -> None:
        with self._cond:
            if self.error is None:
                self.error = exc
            self._cond.notify_all()

    def _receive(self) -> None:
        assert self._results_r is not None and self._views is not None
        results, images = self._results_r, self._views.images
        try:
            if not results.poll(self.STARTUP_TIMEOUT_S):
                with self._cond:
                    closed = self._closed
                if closed:
                    return
                raise RenderProcessError(
                    f"the camera render process did not start within "
                    f"{self.STARTUP_TIMEOUT_S:g} s. If a script of yours starts the "
                    f"simulator, do so under `if __name__ == \"__main__\":` (the child "
                    f"imports your main module); {_FIX}")
            while True:
                try:
                    msg = results.recv_bytes()
                except (EOFError, OSError):
                    with self._cond:
                        clean = self._closed and len(self._free) == self.FRAMES_IN_FLIGHT
                    if not clean:
                        code = self._process.exitcode if self._process is not None else None
                        raise RenderProcessError(
                            f"the camera render process exited (code {code}) with frames "
                            f"outstanding or before close; see its messages above; "
                            f"{_FIX}") from None
                    return
                kind = msg[:1]
                if kind == b"R":
                    continue
                if kind == b"E":
                    text = msg[2:].decode(errors="replace")
                    if msg[1:2] == b"C":
                        raise ConfigError(text.removeprefix("ConfigError: "))
                    raise RenderProcessError(f"camera render process failed: {text}; {_FIX}")
                _, slot, render_s = _DONE.unpack(msg)
                try:
                    self.stats.render_s += render_s
                    self.stats.images += 1
                    if self.on_image:
                        self.on_image(self._slot_t[slot], images[slot][::-1])
                finally:
                    with self._cond:
                        self._free.append(slot)
                        self._cond.notify_all()
        except Exception as exc:
            log.exception("camera rendering stopped")
            self._fail(exc)

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Render what is queued, stop the child (kill it if it does not exit), free the
        shared memory. Safe to call twice, and from the receiver thread (no join there)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        atexit.unregister(self.close)
        deadline = time.monotonic() + timeout_s
        try:
            if self._requests_w is not None:
                try:
                    self._write(self._requests_w.fileno(), _REQUEST.pack(_STOP))
                except OSError:
                    pass  # already gone
            process = self._process
            if process is not None:
                process.join(max(0.0, deadline - time.monotonic()))
                if process.is_alive():
                    log.warning("camera render process did not exit in %.1f s: killing it",
                                timeout_s)
                    process.kill()  # it ignores SIGTERM (see _child_main)
                    process.join(1.0)
            thread = getattr(self, "_thread", None)
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.1, deadline - time.monotonic()))
        finally:
            for conn in (self._requests_w, self._results_r):
                if conn is not None:
                    conn.close()
            if self._process is not None:
                self.exitcode = self._process.exitcode
                if self.exitcode is not None:
                    self._process.close()
            self._views = None
            if self._shm is not None:
                shm, self._shm = self._shm, None
                try:
                    shm.close()
                except BufferError:  # a consumer kept a view: the mapping goes with it
                    log.warning("camera shared memory still referenced at close")
                shm.unlink()
