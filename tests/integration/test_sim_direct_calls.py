"""MuJoCo calls that keep the GIL (direct_calls) and the offscreen camera, against the
bindings they stand in for. Simulator tier: MuJoCo and EGL, no ROS."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import mujoco
import numpy as np
import pytest

from passeur.errors import ConfigError
from passeur.sim import direct_calls
from passeur.sim.camera import OffscreenCamera
from passeur.sim.simulator import Simulator


def drive(sim: Simulator) -> tuple[np.ndarray, np.ndarray, int]:
    # Into a box 1 m ahead of the start (facing +y) and on: contacts, the pushed box's
    # motion and the contact counter all depend on every step.
    start = sim.world.start_pose
    sim.place_obstacle(0, start.x_m, start.y_m + 1.2)
    for v, w, steps in ((0.6, 0.0, 1500), (0.3, 0.8, 700), (0.5, -0.3, 900)):
        sim.set_velocity(v, w)
        sim.step(steps)
    return sim.data.qpos.copy(), sim.scan(), sim.contact_steps()


def test_direct_calls_are_available_with_the_pinned_mujoco() -> None:
    ok, why = direct_calls.available()
    assert ok, why
    assert mujoco.__version__ == direct_calls.SUPPORTED_VERSION


def test_direct_and_bound_calls_give_the_same_trajectory_scan_and_contacts() -> None:
    direct = Simulator("library", seed=5)
    bound = Simulator("library", seed=5, direct_calls=False)
    assert direct._calls.direct and not bound._calls.direct
    qpos_a, scan_a, contacts_a = drive(direct)
    qpos_b, scan_b, contacts_b = drive(bound)
    assert np.array_equal(qpos_a, qpos_b)
    assert np.array_equal(scan_a, scan_b)
    assert contacts_a == contacts_b
    assert contacts_a > 0, "the drive should have run into the box"
    assert np.isfinite(scan_a).any() and not np.array_equal(qpos_a[:2], [10.0, 2.0])


def test_a_direct_call_keeps_the_gil_and_a_bound_call_releases_it() -> None:
    """What the module is for. One long call (a lidar sweep of 200,000 rays, ~0.1 s): another
    Python thread, stamping the time as fast as it can, goes on while the bindings run it, and
    is stopped for the whole direct call (its longest silence spans most of the call)."""
    sim = Simulator("library")
    n = 200_000
    angles = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    vectors = np.ascontiguousarray(
        np.stack([np.cos(angles), np.sin(angles), np.zeros(n)], axis=1).reshape(-1))
    origin = np.array([10.0, 2.0, 0.3])
    group = np.ones(6, dtype=np.uint8)
    geom_id, dist = np.zeros(n, dtype=np.int32), np.zeros(n)
    stamps: list[float] = []
    stop = threading.Event()

    def stamp() -> None:
        clock = time.perf_counter
        while not stop.is_set():
            stamps.append(clock())

    def longest_silence(call: object) -> tuple[float, float]:
        """(longest gap between the other thread's stamps during the call, call duration)."""
        start = time.perf_counter()
        call()  # type: ignore[operator]
        end = time.perf_counter()
        inside = [start] + [t for t in list(stamps) if start <= t <= end] + [end]
        return max(b - a for a, b in zip(inside, inside[1:], strict=False)), end - start

    thread = threading.Thread(target=stamp, daemon=True)
    thread.start()
    try:
        time.sleep(0.05)
        bound_gap, bound_s = longest_silence(lambda: mujoco.mj_multiRay(
            sim.model, sim.data, origin, vectors, group, 1, -1, geom_id, dist, None, n, 12.0))
        bound_dist = dist.copy()
        stamps.clear()
        direct_gap, direct_s = longest_silence(lambda: sim._calls.multi_ray(
            origin, vectors, group, True, -1, geom_id, dist, n, 12.0))
    finally:
        stop.set()
        thread.join()
    assert np.array_equal(dist, bound_dist)
    assert direct_gap >= 0.8 * direct_s, (direct_gap, direct_s)
    # Released: the other thread stamps on through the call (it only needs a core).
    assert bound_gap < 0.5 * bound_s, (bound_gap, bound_s)


def test_memory_use_past_the_guard_hands_back_to_the_bindings(caplog: pytest.LogCaptureFixture
                                                               ) -> None:
    sim = Simulator("library")
    calls = sim._calls
    assert calls.direct
    calls._memory_limit = 0.0  # any use at all is "more than half"
    sim.set_velocity(0.3, 0.0)
    with caplog.at_level("WARNING"):
        sim.step(10)
    assert not calls.direct
    assert "bindings" in calls.reason and "memory use" in calls.reason
    assert any("bindings" in r.getMessage() for r in caplog.records)
    t = sim.time_s
    sim.step(10)  # through the bindings now
    assert sim.time_s == pytest.approx(t + 0.02)


def test_why_not_names_a_version_or_header_mismatch(tmp_path: Path) -> None:
    package = Path(mujoco.__file__).parent
    assert direct_calls.why_not(direct_calls.SUPPORTED_VERSION, package) is None
    assert "written for" in (direct_calls.why_not("9.9.9", package) or "")
    fake = tmp_path / "mujoco"
    (fake / "include" / "mujoco").mkdir(parents=True)
    assert "not found" in (direct_calls.why_not(direct_calls.SUPPORTED_VERSION, fake) or "")
    (fake / f"libmujoco.so.{direct_calls.SUPPORTED_VERSION}").write_bytes(b"")
    header = (package / "include" / "mujoco" / "mujoco.h").read_text()
    (fake / "include" / "mujoco" / "mujoco.h").write_text(
        header.replace("int nray, mjtNum cutoff);", "int nray, mjtNum cutoff, int extra);"))
    assert "mj_multiRay" in (direct_calls.why_not(direct_calls.SUPPORTED_VERSION, fake) or "")


def test_multi_ray_refuses_arrays_of_the_wrong_kind() -> None:
    sim = Simulator("library")
    n = 4
    with pytest.raises(ValueError, match="contiguous float64"):
        sim._calls.multi_ray(np.zeros(3), np.zeros(3 * n, dtype=np.float32),
                             np.ones(6, dtype=np.uint8), True, -1, np.zeros(n, np.int32),
                             np.zeros(n), n, 10.0)


def test_the_offscreen_camera_matches_mujocos_renderer() -> None:
    sim = Simulator("library")
    sim.set_velocity(0.3, 0.5)
    sim.step(300)
    image = sim.render()
    assert image.flags.c_contiguous and image.shape == (480, 640, 3)
    view = sim.render_view()
    assert np.array_equal(view, image) and not view.flags.owndata
    sim.close_renderer()  # its context is not current once mujoco.Renderer's has been
    renderer = mujoco.Renderer(sim.model, 480, 640)
    try:
        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION,
                     mujoco.mjtRndFlag.mjRND_SKYBOX):
            renderer.scene.flags[flag] = 0
        renderer.update_scene(sim.data, camera=sim.built.camera)
        reference = renderer.render()
    finally:
        renderer.close()
    assert np.array_equal(image, reference)
    assert image.std() > 10  # a picture, not a blank
    again = sim.render()  # a new camera after the other context was freed
    try:
        assert np.array_equal(again, image)
    finally:
        sim.close_renderer()


def test_a_camera_larger_than_the_offscreen_buffer_is_refused() -> None:
    sim = Simulator("library")
    with pytest.raises(ConfigError, match="offscreen buffer"):
        OffscreenCamera(sim.model, sim.built.camera, 4000, 3000)
