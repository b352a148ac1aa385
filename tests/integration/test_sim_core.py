"""The simulator engine without ROS: determinism, pacing, thread rules, obstacles."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from passeur.errors import ConfigError
from passeur.sim.simulator import LoopRates, SimLoop, Simulator


def run(seed: int) -> tuple[list[tuple[float, float, float]], np.ndarray]:
    sim = Simulator("chateau", seed=seed)
    poses = []
    for v, w in ((0.4, 0.0), (0.3, 0.6), (0.0, -1.0), (0.5, 0.2)):
        sim.set_velocity(v, w)
        sim.step(400)
        p = sim.pose()
        poses.append((p.x_m, p.y_m, p.yaw_rad))
    return poses, sim.scan()


def test_runs_are_identical_for_a_seed_and_differ_across_seeds() -> None:
    poses_a, scan_a = run(seed=7)
    poses_b, scan_b = run(seed=7)
    poses_c, scan_c = run(seed=8)
    assert poses_a == poses_b
    assert np.array_equal(scan_a, scan_b)
    assert poses_a == poses_c  # noise is on the lidar only: physics does not depend on it
    assert not np.array_equal(scan_a, scan_c)


def test_the_base_respects_its_acceleration_limit() -> None:
    sim = Simulator("library")
    sim.set_velocity(0.6, 0.0)
    sim.step(100)  # 0.2 s at 1.0 m/s^2 (the gz DiffDrive limit in the URDF)
    assert sim.twist().vx_mps == pytest.approx(0.2, abs=0.03)
    sim.step(400)
    assert sim.twist().vx_mps == pytest.approx(0.6, abs=0.02)


def test_render_must_stay_in_its_thread() -> None:
    sim = Simulator("library")
    image = sim.render()
    assert image.shape == (480, 640, 3) and image.dtype == np.uint8
    errors: list[BaseException] = []

    def other() -> None:
        try:
            sim.render()
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert errors and "thread that created the renderer" in str(errors[0])
    sim.close_renderer()


def test_real_time_pacing_never_runs_ahead_of_the_wall_clock() -> None:
    sim = Simulator("library")
    loop = SimLoop(sim, real_time_factor=1.0, rates=LoopRates(camera_hz=0.0))
    start = time.monotonic()
    loop.start()
    time.sleep(0.5)
    wall = time.monotonic() - start
    simulated = sim.time_s
    loop.stop()
    assert not loop.running and loop.error is None
    assert simulated <= wall * 1.0 + 0.05


def test_the_loop_stops_the_base_when_commands_stop() -> None:
    sim = Simulator("library")
    loop = SimLoop(sim, real_time_factor=0.0, rates=LoopRates(camera_hz=0.0), cmd_timeout_s=0.2)
    loop.command(0.3, 0.0)
    assert sim.target_velocity == (0.3, 0.0)
    loop.start()
    deadline = time.monotonic() + 30.0
    while sim.target_velocity != (0.0, 0.0) and time.monotonic() < deadline:
        time.sleep(0.01)
    loop.stop()
    assert sim.target_velocity == (0.0, 0.0), "the watchdog must zero a silent command"


def test_below_real_time_the_watchdog_waits_for_commands_as_far_apart_in_wall_time() -> None:
    """At --rtf 0.1 the safety node's 30 Hz (sim time) are 0.33 s apart in wall time, at 0.05
    0.67 s: a 0.5 s wall-clock watchdog stopped the base between two commands."""
    sim = Simulator("library")
    loop = SimLoop(sim, real_time_factor=0.1, rates=LoopRates(camera_hz=0.0),
                   cmd_timeout_s=0.1)
    loop.command(0.3, 0.0)
    loop.start()
    time.sleep(0.4)  # four times the timeout in wall time, 0.04 s of sim time
    kept = sim.target_velocity
    deadline = time.monotonic() + 30.0  # 0.1 / 0.1 = 1 s of wall time
    while sim.target_velocity != (0.0, 0.0) and time.monotonic() < deadline:
        time.sleep(0.05)
    loop.stop()
    assert kept == (0.3, 0.0), "stopped before 0.1 s of sim time had passed"
    assert sim.target_velocity == (0.0, 0.0), "the watchdog must still zero a silent command"


def test_obstacles_can_be_placed_and_parked() -> None:
    sim = Simulator("library")
    start = sim.pose()
    front_before = float(sim.scan()[180])
    sim.place_obstacle(1, start.x_m, start.y_m + 1.0)  # the library start faces +y
    assert float(sim.scan()[180]) == pytest.approx(1.0 - 0.10 - 0.2, abs=0.03)
    sim.park_obstacle(1)
    assert float(sim.scan()[180]) == pytest.approx(front_before, abs=0.05)
    with pytest.raises(ValueError, match="out of range"):
        sim.place_obstacle(sim.obstacle_count, 0.0, 0.0)


def test_camera_frames_are_rendered_in_their_own_thread_from_the_tick_state() -> None:
    """At --rtf max physics goes on while a frame renders; each frame is the state at its
    tick (the same picture as rendering that state directly), at the configured rate, in
    order, and none is dropped."""
    sim = Simulator("library")
    sim.set_velocity(0.3, 0.4)
    frames: list[tuple[float, np.ndarray, str]] = []
    states: dict[float, object] = {}
    loop = SimLoop(sim, real_time_factor=0.0, rates=LoopRates(camera_hz=15.0),
                   cmd_timeout_s=0.0,
                   on_image=lambda t, rgb: frames.append((t, rgb.copy(),
                                                          threading.current_thread().name)))
    # Keep a copy of the state at each camera tick, taken by the loop thread itself.
    original_submit_state = sim.copy_state

    def copy_state(into: object = None) -> object:
        state = original_submit_state(into)
        states[round(sim.time_s, 6)] = original_submit_state()
        return state

    sim.copy_state = copy_state  # type: ignore[method-assign]
    loop.start(sim_duration_s=2.0)
    assert loop.finished.wait(120.0), "the loop did not finish 2 s of sim time"
    loop.stop()
    assert loop.error is None
    assert 29 <= len(frames) <= 31, f"{len(frames)} frames in 2 s at 15 Hz"
    stamps = [t for t, _, _ in frames]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert all(name.endswith("-render") for _, _, name in frames)
    # Every frame shows the state of its tick (frames in flight each have their own copy),
    # and the last one not the state at the end of the run.
    for t, rgb, _ in frames:
        assert np.array_equal(rgb, sim.render(states[round(t, 6)])), \
            f"frame at {t:.3f} s differs from its tick's state"
    t, rgb, _ = frames[-1]
    assert not np.array_equal(rgb, sim.render()) or sim.time_s == t
    sim.close_renderer()


PILLAR_WORLD = """<sdf version='1.9'><world name='w'>{start}
<model name='pillar'><static>true</static><link name='l'><collision name='c'><geometry>
<cylinder><radius>0.3</radius><length>2</length></cylinder></geometry></collision></link>
</model></world></sdf>"""


@pytest.mark.parametrize("start, where", [
    ("", "the origin (the world has no <frame name=\"robot_start\">)"),  # the default
    ("<frame name='robot_start'><pose>0.2 0 0 0 0 0</pose></frame>",
     "<frame name=\"robot_start\">"),
])
def test_a_start_pose_inside_the_scenery_is_refused(tmp_path: Path, start: str,
                                                    where: str) -> None:
    """MuJoCo would push the robot out of the pillar (out of the building, through a wall)
    and the run would go on from wherever it landed."""
    world = tmp_path / "pillar.sdf"
    world.write_text(PILLAR_WORLD.format(start=start), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        Simulator(world)
    message = str(info.value)
    assert message.startswith(f"{world}: the robot's start pose (")
    assert where in message and "pillar/l/c" in message and "at a free spot" in message
    free = tmp_path / "free.sdf"
    free.write_text(PILLAR_WORLD.format(
        start="<frame name='robot_start'><pose>2 0 0 0 0 1.57</pose></frame>"), encoding="utf-8")
    assert Simulator(free).pose().x_m == pytest.approx(2.0, abs=0.01)
