"""Camera frames rendered in a child process (render_process.py): same frames as the render
thread, in order, none dropped; a dead or GL-less child is a clear error, not a hang; no
shared memory left behind; the sim node publishes images with the option on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sensor_msgs.msg import Image

from passeur.errors import ConfigError
from passeur.ros import qos
from passeur.sim.render_process import ProcessRenderWorker, RenderProcessError, render_state
from passeur.sim.simulator import LoopRates, SimLoop, Simulator
from tests.support.ros_harness import StackHarness


def shm_segments() -> set[str]:
    return {p.name for p in Path("/dev/shm").iterdir() if p.name.startswith("psm_")}


@pytest.fixture
def no_shm_leak() -> Iterator[None]:
    before = shm_segments()
    yield
    assert shm_segments() - before == set(), "shared memory segments left in /dev/shm"


def wait_for(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.01)


def test_frames_match_the_render_thread_for_each_tick_state(no_shm_leak: None) -> None:
    """Each frame from the child is the picture the render thread makes of its tick's state
    (positions from qpos, as the child computes them), at the rate, in order, none dropped,
    delivered in a thread of this process."""
    import mujoco

    sim = Simulator("library")
    sim.set_velocity(0.3, 0.4)
    frames: list[tuple[float, np.ndarray, str]] = []
    states: dict[float, Any] = {}
    loop = SimLoop(sim, real_time_factor=0.0, rates=LoopRates(camera_hz=15.0),
                   cmd_timeout_s=0.0, render_process=True,
                   on_image=lambda t, rgb: frames.append((t, rgb.copy(),
                                                          threading.current_thread().name)))
    original = sim.copy_render_state

    def copy_render_state(*arrays: Any) -> None:
        original(*arrays)
        states[round(sim.time_s, 6)] = sim.copy_state()

    sim.copy_render_state = copy_render_state  # type: ignore[method-assign]
    loop.start(sim_duration_s=2.0)
    assert loop.finished.wait(120.0), "the loop did not finish 2 s of sim time"
    loop.stop()
    assert loop.error is None
    assert 29 <= len(frames) <= 31, f"{len(frames)} frames in 2 s at 15 Hz"
    stamps = [t for t, _, _ in frames]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert sorted(states) == [round(t, 6) for t in stamps], "a frame was dropped"
    assert all(name.endswith("-render") for _, _, name in frames)
    distinct = set()
    for t, rgb, _ in frames:
        state = states[round(t, 6)]
        render_state(mujoco, sim.model, state)
        expected = sim.render(state)
        diff = np.abs(rgb.astype(np.int16) - expected).astype(np.float64)
        # Same model, same GL (llvmpipe): identical; allow rasteriser rounding only.
        assert diff.mean() < 0.01 and diff.max() <= 2, f"frame at {t:.3f} s differs"
        distinct.add(rgb.tobytes())
    assert len(distinct) > len(frames) // 2, "the frames should show the robot turning"
    sim.close_renderer()


def test_a_killed_render_process_stops_the_loop_with_a_clear_error(no_shm_leak: None) -> None:
    sim = Simulator("library")
    frames: list[float] = []
    loop = SimLoop(sim, real_time_factor=0.0, rates=LoopRates(camera_hz=15.0),
                   cmd_timeout_s=0.0, render_process=True,
                   on_image=lambda t, _rgb: frames.append(t))
    loop.start(sim_duration_s=600.0)
    try:
        wait_for(lambda: len(frames) >= 3, 60.0, "three frames")
        worker = loop._render
        assert isinstance(worker, ProcessRenderWorker)
        os.kill(worker._process.pid, signal.SIGKILL)
        assert loop.finished.wait(30.0), "the loop hung after the render process died"
    finally:
        loop.stop()
    assert isinstance(loop.error, RenderProcessError)
    assert "render process exited" in str(loop.error)
    assert "render_process to false" in str(loop.error)


def loop_error_with_camera(case: str) -> BaseException | None:
    """Run a camera loop with the render process until it stops by itself; its error."""
    sim = Simulator("library")
    loop = SimLoop(sim, real_time_factor=0.0, rates=LoopRates(camera_hz=15.0),
                   cmd_timeout_s=0.0, render_process=True, on_image=lambda _t, _rgb: None)
    loop.start(sim_duration_s=600.0)
    try:
        assert loop.finished.wait(60.0), f"the loop hung {case}"
    finally:
        loop.stop()
    return loop.error


def test_no_opengl_in_the_child_is_the_usual_config_error(
        no_shm_leak: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUJOCO_GL", "disable")  # the child inherits the environment
    error = loop_error_with_camera("without OpenGL in the render process")
    assert isinstance(error, ConfigError)
    assert "MUJOCO_GL=egl" in str(error) and "camera_rate_hz 0" in str(error)


def test_close_frees_the_child_and_shared_memory_even_mid_stream(no_shm_leak: None) -> None:
    sim = Simulator("library")
    stats = SimLoop(sim).stats
    got: list[float] = []
    worker = ProcessRenderWorker(sim, lambda t, _rgb: got.append(t), stats, threading.Event(),
                                 "test")
    segment = worker._shm.name if worker._shm is not None else ""
    assert segment in shm_segments()
    for i in range(5):
        worker.submit(i * 0.1)
    pid = worker._process.pid
    worker.close()
    worker.close()  # twice is fine
    assert got == [i * 0.1 for i in range(5)], "queued frames are rendered before close"
    assert worker.exitcode == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # exited and reaped
    assert segment not in shm_segments()
    with pytest.raises(RenderProcessError, match="after close"):
        worker.submit(1.0)  # closed: no slot to write into, no process


def test_a_sigterm_to_the_process_group_leaves_the_child_to_the_parent(
        no_shm_leak: None) -> None:
    """`timeout passeur sim` or systemd's stop signal the whole process group: the child must
    not die of it (the parent then reported a dead render process), but render what is queued
    and exit when the parent closes it."""
    sim = Simulator("library")
    stats = SimLoop(sim).stats
    got: list[float] = []
    worker = ProcessRenderWorker(sim, lambda t, _rgb: got.append(t), stats, threading.Event(),
                                 "test")
    worker.submit(0.0)
    wait_for(lambda: got == [0.0], 60.0, "the first frame")
    os.kill(worker._process.pid, signal.SIGTERM)
    time.sleep(0.2)  # a SIGTERM that kills takes effect at once
    for i in range(1, 4):
        worker.submit(i * 0.1)
    worker.close()
    assert worker.error is None, f"the render process died of SIGTERM: {worker.error}"
    assert got == [i * 0.1 for i in range(4)]
    assert worker.exitcode == 0


UNCLOSED_SCRIPT = """
import threading, time
from passeur.sim.render_process import ProcessRenderWorker
from passeur.sim.simulator import SimLoop, Simulator

if __name__ == "__main__":
    sim = Simulator("library")
    got = []
    worker = ProcessRenderWorker(sim, lambda t, _rgb: got.append(t), SimLoop(sim).stats,
                                 threading.Event(), "script")
    worker.submit(0.0)
    deadline = time.monotonic() + 60.0
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    print("frames", len(got), flush=True)
    raise SystemExit(3)  # a script ending without closing the worker (e.g. on an error)
"""


def test_a_script_that_never_closes_its_worker_still_exits(tmp_path: Path,
                                                            no_shm_leak: None) -> None:
    """The child ignores SIGTERM (above), which multiprocessing's own clean-up at exit relies
    on: the worker closes itself at exit instead, and the script ends at once."""
    script = tmp_path / "unclosed.py"
    script.write_text(UNCLOSED_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[2] / "src"), os.environ.get("PYTHONPATH", "")])}
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                              text=True, timeout=120)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError("the script hung at exit on its unclosed render worker") from exc
    assert "frames 1" in done.stdout, done.stdout + done.stderr
    assert done.returncode == 3, done.stderr
    assert time.monotonic() - started < 100


@pytest.mark.parametrize("render_process", [True, False])
def test_sim_node_publishes_images_either_way(ros_context: Any, no_shm_leak: None,
                                              render_process: bool) -> None:
    with StackHarness(ros_context, nodes=["sim"],
                      per_node={"sim": {"real_time_factor": 0.0, "world": "library",
                                        "render_process": render_process}}) as h:
        msg = h.wait_for_message("camera/image_raw", Image, timeout_s=60.0, qos=qos.SENSOR)
        assert (msg.width, msg.height, msg.encoding) == (640, 480, "rgb8")
        rgb = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(480, 640, 3)
        assert rgb.astype(np.float64).std() > 20.0, "the image shows the world"
        loop = h.node("sim").loop
        assert isinstance(loop._render, ProcessRenderWorker) == render_process


def test_a_render_process_that_never_starts_is_a_clear_error_not_a_hang(
        no_shm_leak: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A child that never says it is ready (here: not within 10 ms, far less than a spawn
    takes; for real: a user's script without a __main__ guard, which the child re-runs) stops
    the loop with an error that says what to do, instead of freezing the simulation."""
    monkeypatch.setattr(ProcessRenderWorker, "STARTUP_TIMEOUT_S", 0.01)
    error = loop_error_with_camera("on a render process that never started")
    assert isinstance(error, RenderProcessError)
    assert "did not start within" in str(error)
    assert '__name__ == "__main__"' in str(error)
    assert "render_process to false" in str(error)
