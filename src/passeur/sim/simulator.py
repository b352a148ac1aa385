"""The embedded simulator: MuJoCo physics, diff drive, lidar, camera, pacing. No rclpy here.

`Simulator` is the engine (single-threaded use, plus a lock so another thread may move test
obstacles or read the pose); `SimLoop` runs it in its own thread, paced to a real-time factor
(or as fast as possible), and hands sensor data to callbacks (the ROS node publishes them).

The camera renderer holds an OpenGL (EGL) context, which is current in one thread only: it is
created lazily by the first `render()` call and must always be used from that same thread
(in `SimLoop`, its render thread, which renders from a copy of the state while physics goes
on). Set MUJOCO_GL=egl before mujoco is imported (done here if unset).
"""

from __future__ import annotations

import collections
import logging
import math
import os
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from passeur.errors import ConfigError
from passeur.ros.geometry import Pose2D
from passeur.sim.camera import OffscreenCamera
from passeur.sim.direct_calls import DirectStepper
from passeur.sim.mujoco_model import (
    LIDAR_GEOMGROUP,
    OBSTACLE_PARK_Y_M,
    OBSTACLE_SIZE_M,
    BuiltModel,
    build_model,
    default_urdf_path,
    describe_robot,
    expand_xacro,
)
from passeur.sim.render_process import ProcessRenderWorker
from passeur.sim.sdf_world import START_FRAME, World, load_world

log = logging.getLogger(__name__)

PHYSICS_STEP_S = 0.002
#: Physics steps per wheel-command update and contact check (10 ms).
CONTROL_STEPS = 5
#: Physics steps between the loop's pacing checks (10 ms): sleeping after each 2 ms step would
#: cost more than the step itself. Past a consumer stalled for 0.5 s, time crawls on by this.
PACE_STEPS = 5


def _ensure_gl_backend() -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")
    if os.environ["MUJOCO_GL"] == "egl":
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


@dataclass(frozen=True)
class Twist2D:
    """Body-frame velocity: forward, leftward (m/s), counter-clockwise (rad/s)."""

    vx_mps: float
    vy_mps: float
    wz_radps: float


def _drive_limits(urdf: str) -> tuple[float, float]:
    """(max linear, max angular acceleration) from the URDF's gz DiffDrive plugin."""
    root = ET.fromstring(urdf)
    for plugin in root.iter("plugin"):
        if "DiffDrive" in (plugin.get("name") or ""):
            lin = float(plugin.findtext("max_linear_acceleration") or 1.0)
            ang = float(plugin.findtext("max_angular_acceleration") or 3.0)
            return lin, ang
    return 1.0, 3.0


class Simulator:
    """World + robot physics. Deterministic for a given seed and command sequence."""

    def __init__(self, world: World | str | Path, *, urdf_path: Path | None = None,
                 seed: int = 0, scan_noise_std_m: float = 0.005, obstacles: int = 4,
                 direct_calls: bool = True) -> None:
        _ensure_gl_backend()
        import mujoco

        self._mj = mujoco
        self.world = world if isinstance(world, World) else load_world(world)
        urdf_file = urdf_path or default_urdf_path()
        urdf = expand_xacro(urdf_file)
        self.robot = describe_robot(urdf, urdf_file)
        self.max_linear_accel_mps2, self.max_angular_accel_radps2 = _drive_limits(urdf)
        if scan_noise_std_m < 0:
            raise ConfigError(f"scan noise must be >= 0, got {scan_noise_std_m}")
        self.built: BuiltModel = build_model(self.world, urdf, self.robot, obstacles)
        self.model: Any = self.built.model
        self.data: Any = mujoco.MjData(self.model)
        # mj_step and mj_multiRay keeping the GIL (see direct_calls: in a process with ROS
        # executor threads, re-taking it after each call costs more than the call).
        self._calls = DirectStepper(self.model, self.data, enabled=direct_calls)
        # Robot-vs-scenery contact test on geom ids, in plain Python: contact lists hold a
        # handful of entries, for which numpy's per-call overhead is the whole cost.
        self._robot_geoms = frozenset(int(g) for g in np.flatnonzero(self.built.robot_geom))
        self._scenery_geoms = frozenset(int(g) for g in np.flatnonzero(self.built.scenery_geom))
        self.seed = seed
        self.scan_noise_std_m = scan_noise_std_m
        self._lock = threading.RLock()
        self._target = (0.0, 0.0)
        self._current = (0.0, 0.0)
        self._renderer: Any = None
        self._render_thread: int | None = None
        self._contact_steps = 0
        self._in_contact = False
        r = self.robot
        n = r.lidar_samples
        increment = (r.lidar_max_angle_rad - r.lidar_min_angle_rad) / max(n - 1, 1)
        self.scan_angle_increment_rad = increment
        angles = r.lidar_min_angle_rad + increment * np.arange(n)
        self._ray_local = np.stack([np.cos(angles), np.sin(angles), np.zeros(n)], axis=1)
        self._ray_geom = np.zeros(n, dtype=np.int32)
        self._ray_dist = np.zeros(n, dtype=np.float64)
        self.reset()
        self._check_start_pose()

    # -- state ---------------------------------------------------------------------------
    def reset(self, pose: Pose2D | None = None) -> None:
        """Back to t = 0 at the world's start pose (or `pose`), obstacles parked."""
        mj = self._mj
        with self._lock:
            mj.mj_resetData(self.model, self.data)
            start = pose or self.world.start_pose
            self.data.qpos[0:3] = [start.x_m, start.y_m, 0.0]
            self.data.qpos[3:7] = [math.cos(start.yaw_rad / 2), 0.0, 0.0,
                                   math.sin(start.yaw_rad / 2)]
            for i in range(len(self.built.obstacle_mocap)):
                self._park(i)
            self._rng = np.random.default_rng(self.seed)
            self._target = (0.0, 0.0)
            self._current = (0.0, 0.0)
            self._contact_steps = 0
            self._in_contact = False
            mj.mj_forward(self.model, self.data)

    def _check_start_pose(self) -> None:
        """Refuse a start pose inside the scenery: MuJoCo would push the robot out through
        the nearest face, often out of the building, and the run would go on from there."""
        touched = sorted({scenery for _robot, scenery in self.contacts()})
        if not touched:
            return
        start = self.world.start_pose
        where = (f'<frame name="{START_FRAME}">' if START_FRAME in self.world.frames
                 else f'the origin (the world has no <frame name="{START_FRAME}">)')
        raise ConfigError(
            f"the robot's start pose ({start.x_m:.2f}, {start.y_m:.2f}), {where}, overlaps "
            f"{', '.join(touched)}; put <frame name=\"{START_FRAME}\"><pose>X Y 0 0 0 YAW"
            "</pose></frame> in <world> at a free spot", self.world.path)

    @property
    def time_s(self) -> float:
        return float(self.data.time)

    def set_velocity(self, linear_mps: float, angular_radps: float) -> None:
        """Target body velocity; the base ramps to it within its acceleration limits."""
        if not (math.isfinite(linear_mps) and math.isfinite(angular_radps)):
            linear_mps, angular_radps = 0.0, 0.0
        self._target = (float(linear_mps), float(angular_radps))

    @property
    def target_velocity(self) -> tuple[float, float]:
        return self._target

    def step(self, count: int = 1) -> None:
        """Advance `count` physics steps (2 ms each).

        The wheel commands and the contact check are updated every `CONTROL_STEPS` steps
        (10 ms) and MuJoCo runs the steps in between in one call: per-step Python work and,
        above all, re-taking the GIL after every 14 us step cost more than the physics when
        ROS executor threads share the interpreter.
        """
        r = self.robot
        half_track = r.wheel_separation_m / 2
        limit = r.max_wheel_speed_radps
        left, right = self.built.left_actuator, self.built.right_actuator
        with self._lock:
            remaining = count
            while remaining > 0:
                n = min(remaining, CONTROL_STEPS)
                remaining -= n
                dv = self.max_linear_accel_mps2 * PHYSICS_STEP_S * n
                dw = self.max_angular_accel_radps2 * PHYSICS_STEP_S * n
                tv, tw = self._target
                v, w = self._current
                v += min(max(tv - v, -dv), dv)
                w += min(max(tw - w, -dw), dw)
                self._current = (v, w)
                ctrl = self.data.ctrl
                ctrl[left] = min(max((v - w * half_track) / r.wheel_radius_m, -limit), limit)
                ctrl[right] = min(max((v + w * half_track) / r.wheel_radius_m, -limit), limit)
                self._calls.step(n)
                self._in_contact = self._robot_touches_scenery()
                if self._in_contact:
                    self._contact_steps += n

    def _robot_touches_scenery(self) -> bool:
        ncon = int(self.data.ncon)
        if ncon == 0:
            return False
        robot, scenery = self._robot_geoms, self._scenery_geoms
        for a, b in self.data.contact.geom[:ncon].tolist():
            if (a in robot and b in scenery) or (b in robot and a in scenery):
                return True
        return False

    def robot_in_contact(self) -> bool:
        """True if, after the last physics step, the robot touches a wall, furniture or
        test obstacle (the floor does not count)."""
        return self._in_contact

    def contact_steps(self) -> int:
        """Physics steps since reset() during which the robot touched the scenery (checked
        every CONTROL_STEPS steps: a touch counts for the whole 10 ms period)."""
        return self._contact_steps

    def contacts(self) -> list[tuple[str, str]]:
        """Names of (robot geom, scenery geom) pairs in contact now, for error messages."""
        mj = self._mj
        out = []
        with self._lock:
            for i in range(int(self.data.ncon)):
                g1, g2 = (int(g) for g in self.data.contact.geom[i])
                robot, scenery = self.built.robot_geom, self.built.scenery_geom
                if robot[g2] and scenery[g1]:
                    g1, g2 = g2, g1
                if robot[g1] and scenery[g2]:
                    out.append((mj.mj_id2name(self.model, mj.mjtObj.mjOBJ_GEOM, g1) or str(g1),
                                mj.mj_id2name(self.model, mj.mjtObj.mjOBJ_GEOM, g2) or str(g2)))
        return out

    def pose(self) -> Pose2D:
        """Ground-truth pose of base_link in the world (map) frame."""
        with self._lock:
            x, y = float(self.data.qpos[0]), float(self.data.qpos[1])
            w, qx, qy, qz = (float(v) for v in self.data.qpos[3:7])
        yaw = math.atan2(2.0 * (w * qz + qx * qy), 1.0 - 2.0 * (qy * qy + qz * qz))
        return Pose2D(x, y, yaw)

    def twist(self) -> Twist2D:
        """Ground-truth velocity of base_link in its own frame."""
        with self._lock:
            v_world = np.array(self.data.qvel[0:3], dtype=np.float64)
            w_body = float(self.data.qvel[5])  # free joint: angular velocity in body frame
            rot = np.array(self.data.xmat[self.built.base_body], dtype=np.float64).reshape(3, 3)
        v_body = rot.T @ v_world
        return Twist2D(float(v_body[0]), float(v_body[1]), w_body)

    def wheel_speeds(self) -> tuple[float, float]:
        """Measured (left, right) wheel angular velocities, rad/s."""
        return (float(self.data.qvel[self.built.left_joint_dof]),
                float(self.data.qvel[self.built.right_joint_dof]))

    # -- sensors ---------------------------------------------------------------------------
    def scan(self) -> npt.NDArray[np.float32]:
        """Ranges of one lidar sweep (REP-117: +inf no return, -inf closer than range_min)."""
        r = self.robot
        n = r.lidar_samples
        with self._lock:
            origin = np.array(self.data.site_xpos[self.built.lidar_site], dtype=np.float64)
            rot = np.array(self.data.site_xmat[self.built.lidar_site],
                           dtype=np.float64).reshape(3, 3)
            vec = np.ascontiguousarray((self._ray_local @ rot.T).reshape(-1))
            self._calls.multi_ray(origin, vec, LIDAR_GEOMGROUP, True, -1, self._ray_geom,
                                  self._ray_dist, n, r.lidar_max_range_m)
            dist = self._ray_dist.copy()
            noise = self._rng.normal(0.0, self.scan_noise_std_m, n) if self.scan_noise_std_m \
                else np.zeros(n)
        hit = (self._ray_geom >= 0) & (dist >= 0)
        ranges = np.where(hit, dist + noise, np.inf)
        ranges = np.where(ranges > r.lidar_max_range_m, np.inf, ranges)
        ranges = np.where(ranges < r.lidar_min_range_m, -np.inf, ranges)
        return ranges.astype(np.float32)

    def copy_state(self, into: Any = None) -> Any:
        """A copy of the simulation state (MjData, ~5 us) to render from in another thread
        while physics goes on; `into` is reused when given."""
        mj = self._mj
        with self._lock:
            if into is None:
                into = mj.MjData(self.model)
            mj.mj_copyData(into, self.model, self.data)
        return into

    def copy_render_state(self, qpos: npt.NDArray[np.float64], mocap_pos: npt.NDArray[np.float64],
                          mocap_quat: npt.NDArray[np.float64]) -> None:
        """Copy what a camera frame depends on (joint positions, test obstacle poses) into
        the given arrays (nq, nmocap x 3, nmocap x 4): a render process rebuilds the scene
        from them (`render_process.render_state`)."""
        with self._lock:
            qpos[:] = self.data.qpos
            mocap_pos[:] = self.data.mocap_pos
            mocap_quat[:] = self.data.mocap_quat

    def render(self, state: Any = None) -> npt.NDArray[np.uint8]:
        """One RGB camera image (H x W x 3, a new array) of the current state, or of `state`
        (from `copy_state`). Always call from the same thread."""
        return np.ascontiguousarray(self.render_view(state))

    def render_view(self, state: Any = None) -> npt.NDArray[np.uint8]:
        """As `render`, but a view of the camera's buffer, valid until the next render
        (no copy: the caller copies what it keeps). Always call from the same thread."""
        me = threading.get_ident()
        if self._renderer is None:
            r = self.robot
            self._renderer = OffscreenCamera(self.model, self.built.camera, r.camera_width,
                                             r.camera_height)
            self._render_thread = me
        elif self._render_thread != me:
            raise RuntimeError("Simulator.render() must be called from the thread that "
                               "created the renderer (the OpenGL context is current there)")
        if state is not None:
            self._renderer.update(self.model, state)
        else:
            with self._lock:
                self._renderer.update(self.model, self.data)
        return self._renderer.render()

    def close_renderer(self) -> None:
        """Release the OpenGL context; call from the render thread."""
        if self._renderer is not None:
            try:
                self._renderer.close()
            finally:
                self._renderer = None
                self._render_thread = None

    # -- test obstacles --------------------------------------------------------------------
    @property
    def obstacle_count(self) -> int:
        return len(self.built.obstacle_mocap)

    def place_obstacle(self, index: int, x_m: float, y_m: float, yaw_rad: float = 0.0) -> None:
        """Put movable box `index` (0.4 x 0.4 x 1.0 m) with its centre at (x, y)."""
        if not 0 <= index < self.obstacle_count:
            raise ValueError(f"obstacle index {index} out of range 0..{self.obstacle_count - 1}")
        if not all(math.isfinite(v) for v in (x_m, y_m, yaw_rad)):
            # MuJoCo would go unstable and reset itself: the robot back at the world's origin.
            raise ValueError(f"obstacle {index}: pose ({x_m}, {y_m}, {yaw_rad}) is not finite")
        with self._lock:
            mocap = self.built.obstacle_mocap[index]
            self.data.mocap_pos[mocap] = [x_m, y_m, OBSTACLE_SIZE_M[2] / 2]
            self.data.mocap_quat[mocap] = [math.cos(yaw_rad / 2), 0.0, 0.0, math.sin(yaw_rad / 2)]
            self._mj.mj_kinematics(self.model, self.data)

    def park_obstacle(self, index: int) -> None:
        """Move obstacle `index` back out of the world."""
        if not 0 <= index < self.obstacle_count:
            raise ValueError(f"obstacle index {index} out of range 0..{self.obstacle_count - 1}")
        with self._lock:
            self._park(index)
            self._mj.mj_kinematics(self.model, self.data)

    def _park(self, index: int) -> None:
        mocap = self.built.obstacle_mocap[index]
        self.data.mocap_pos[mocap] = [0.0, OBSTACLE_PARK_Y_M - 2.0 * index, OBSTACLE_SIZE_M[2] / 2]
        self.data.mocap_quat[mocap] = [1.0, 0.0, 0.0, 0.0]


# ------------------------------------------------------------------------------------------
@dataclass
class LoopRates:
    clock_hz: float = 100.0
    odom_hz: float = 50.0
    scan_hz: float = 10.0
    camera_hz: float = 15.0  # 0 = camera off


@dataclass
class LoopStats:
    steps: int = 0
    scans: int = 0
    images: int = 0
    physics_s: float = 0.0
    scan_s: float = 0.0
    render_s: float = 0.0  # in the render thread
    render_wait_s: float = 0.0  # the loop waiting for a frame slot (FRAMES_IN_FLIGHT)
    wall_s: float = 0.0
    waits: int = 0  # back-pressure waits for slow consumers
    crawls: int = 0  # times a consumer stalled past the wait limit and time went on anyway

    @property
    def sim_s(self) -> float:
        return self.steps * PHYSICS_STEP_S


class _RenderWorker:
    """Renders camera frames in a thread of its own, from copies of the state taken at the
    camera ticks, so that physics goes on meanwhile (rendering is the dearest part of a sim
    second, and MuJoCo and Mesa release the GIL while they work).

    Up to `FRAMES_IN_FLIGHT` frames wait or render at once, each from its own state copy:
    `submit` waits only when that many are outstanding, so no frame is dropped, frames come
    out in order, and at `--rtf max` the render thread always has its next frame ready
    instead of waiting for the loop thread to hand it over (each hand-over costs a GIL
    round trip). In real time the thread keeps up and a frame is rendered as soon as it is
    due. The OpenGL context is created, used and closed in this thread."""

    FRAMES_IN_FLIGHT = 2

    def __init__(self, sim: Simulator, on_image: Callable[[float, npt.NDArray[np.uint8]], None]
                 | None, stats: LoopStats, stop: threading.Event, name: str) -> None:
        self.sim = sim
        self.on_image = on_image
        self.stats = stats
        self._stop = stop
        self._cond = threading.Condition()
        self._pending: collections.deque[tuple[float, Any]] = collections.deque()
        self._busy = False
        self._done = False
        self._spare: list[Any] = []  # state copies to reuse
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"{name}-render", daemon=True)
        self._thread.start()

    def submit(self, t: float) -> None:
        """Loop thread: render the state as it is now, stamped `t`."""
        a = time.perf_counter()
        with self._cond:
            while (len(self._pending) + self._busy >= self.FRAMES_IN_FLIGHT
                   and not self._stop.is_set() and self.error is None):
                self._cond.wait(0.05)
            if self.error is not None:
                raise self.error
            self.stats.render_wait_s += time.perf_counter() - a
            state = self._spare.pop() if self._spare else None
        state = self.sim.copy_state(state)
        with self._cond:
            self._pending.append((t, state))
            self._cond.notify_all()

    def close(self, timeout_s: float = 5.0) -> None:
        with self._cond:
            self._done = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._pending and not self._done:
                        self._cond.wait()
                    if not self._pending:  # closed, and the last frame is out
                        return
                    t, state = self._pending.popleft()
                    self._busy = True
                try:
                    c = time.perf_counter()
                    image = self.sim.render_view(state)
                    self.stats.render_s += time.perf_counter() - c
                    self.stats.images += 1
                    if self.on_image:
                        self.on_image(t, image)
                finally:
                    with self._cond:
                        self._busy = False
                        self._spare.append(state)
                        self._cond.notify_all()
        except Exception as exc:
            self.error = exc
            log.exception("camera rendering stopped")
            with self._cond:
                self._cond.notify_all()
        finally:
            try:
                self.sim.close_renderer()
            except Exception:
                log.exception("closing the renderer failed")


class SimLoop:
    """Runs a Simulator in its own thread and calls back with its outputs.

    Callbacks run in the loop thread: `on_clock(t)`, `on_odom(t, pose, twist)`,
    `on_scan(t, ranges)`; `on_image(t, rgb)` in the render thread, one frame at a time, in
    order (`rgb` is a view of the camera's buffer: copy what you keep). `command(v, w)` may
    be called from any thread; without a new command for `cmd_timeout_s` of wall time (below
    real time, `cmd_timeout_s / real_time_factor`) the base is stopped (0 = never).
    `camera_wanted()`, if given, is asked at each camera tick; frames are rendered only when it
    returns True (nobody subscribed: no rendering cost).
    """

    def __init__(self, sim: Simulator, *, real_time_factor: float = 1.0,
                 rates: LoopRates | None = None, cmd_timeout_s: float = 0.5,
                 on_clock: Callable[[float], None] | None = None,
                 on_odom: Callable[[float, Pose2D, Twist2D], None] | None = None,
                 on_scan: Callable[[float, npt.NDArray[np.float32]], None] | None = None,
                 on_image: Callable[[float, npt.NDArray[np.uint8]], None] | None = None,
                 camera_wanted: Callable[[], bool] | None = None,
                 consumer_time: Callable[[], float | None] | None = None,
                 max_lead_s: float = 0.1,
                 render_process: bool = False,
                 name: str = "sim-loop") -> None:
        if real_time_factor < 0:
            raise ConfigError(f"real_time_factor must be >= 0 (0 = as fast as possible), "
                              f"got {real_time_factor}")
        self.sim = sim
        self.real_time_factor = real_time_factor
        self.rates = rates or LoopRates()
        for field_name, value in vars(self.rates).items():
            if value < 0 or not math.isfinite(value):
                raise ConfigError(f"{field_name} must be >= 0, got {value}")
        self.cmd_timeout_s = cmd_timeout_s
        # Below real time a controller's commands are further apart in wall time (30 Hz of
        # sim time at rtf 0.05: 0.67 s): the watchdog allows as much sim time as at rtf 1
        # rather than stopping the base between two commands.
        slow = 0.0 < real_time_factor < 1.0
        self._cmd_timeout_wall_s = cmd_timeout_s / real_time_factor if slow else cmd_timeout_s
        self.on_clock, self.on_odom, self.on_scan, self.on_image = (on_clock, on_odom, on_scan,
                                                                    on_image)
        # Rendering is the dearest part of a step: skip frames nobody is subscribed to.
        self.camera_wanted = camera_wanted
        # Back-pressure at 'as fast as possible': the sim time the consumers have caught up
        # with (e.g. the last clock message the ROS executor delivered back to us). The loop
        # never runs more than `max_lead_s` of sim time ahead of it, so controllers see their
        # commands applied with a bounded sim-time latency however slow the machine.
        self.consumer_time = consumer_time
        self.max_lead_s = max_lead_s
        # Camera frames rendered in a child process (render_process.py: its own GIL) instead
        # of a thread of this one.
        self.render_process = render_process
        self.stats = LoopStats()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._last_command_wall = time.monotonic()
        self._commanded = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        # Started at the first camera frame (a render process: when the loop starts, so that
        # its start-up, ~1 s, is over when a viewer comes).
        self._render: _RenderWorker | ProcessRenderWorker | None = None
        self._sim_time_limit: float | None = None
        self.finished = threading.Event()

    def command(self, linear_mps: float, angular_radps: float) -> None:
        self._last_command_wall = time.monotonic()
        self._commanded = True
        self.sim.set_velocity(linear_mps, angular_radps)

    def start(self, sim_duration_s: float | None = None) -> None:
        """Start the loop thread; with `sim_duration_s` it stops by itself after that long."""
        if sim_duration_s is not None:
            self._sim_time_limit = self.sim.time_s + sim_duration_s
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the base and the thread. Safe to call twice, from any thread."""
        self._stop.set()
        self.sim.set_velocity(0.0, 0.0)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:
            self.error = exc
            log.exception("simulator loop stopped")
        finally:
            self.sim.set_velocity(0.0, 0.0)
            if self._render is not None:
                self._render.close()  # closes the renderer in its own thread
            self.finished.set()

    def _loop(self) -> None:
        sim = self.sim
        stats = self.stats
        rates = self.rates

        def period(hz: float) -> float:
            return 1.0 / hz if hz > 0 else math.inf

        clock_p, odom_p = period(rates.clock_hz), period(rates.odom_hz)
        scan_p, cam_p = period(rates.scan_hz), period(rates.camera_hz)
        t0 = sim.time_s
        next_clock, next_odom, next_scan, next_cam = t0, t0, t0, t0
        wall0 = time.monotonic()
        sim0 = t0
        perf = time.perf_counter
        loop_start = perf()
        pace_every = PACE_STEPS
        if self.render_process and self.on_image is not None and rates.camera_hz > 0:
            self._render = self._start_render_worker()
        while not self._stop.is_set():
            if (self.cmd_timeout_s > 0 and self._commanded
                    and time.monotonic() - self._last_command_wall > self._cmd_timeout_wall_s):
                sim.set_velocity(0.0, 0.0)
                self._commanded = False
            # Step in one call up to the next event (clock, odom, scan or camera tick), at
            # most pace_every steps: events keep their 2 ms timing.
            t = sim.time_s
            eps = 1e-9
            next_event = min(next_clock, next_odom, next_scan, next_cam,
                             math.inf if self._sim_time_limit is None else self._sim_time_limit)
            n = max(1, min(pace_every - stats.steps % pace_every,
                           math.ceil((next_event - t - eps) / PHYSICS_STEP_S)))
            a = perf()
            sim.step(n)
            b = perf()
            stats.physics_s += b - a
            stats.steps += n
            t = sim.time_s
            if t + eps >= next_clock:
                next_clock += clock_p
                if self.on_clock:
                    self.on_clock(t)
            if t + eps >= next_odom:
                next_odom += odom_p
                if self.on_odom:
                    self.on_odom(t, sim.pose(), sim.twist())
            if t + eps >= next_scan:
                next_scan += scan_p
                c = perf()
                ranges = sim.scan()
                stats.scan_s += perf() - c
                stats.scans += 1
                if self.on_scan:
                    self.on_scan(t, ranges)
            camera_due = t + eps >= next_cam
            if camera_due:
                next_cam += cam_p
            if camera_due and (self.camera_wanted is None or self.camera_wanted()):
                if self._render is None:
                    self._render = self._start_render_worker()
                self._render.submit(t)
            if self._sim_time_limit is not None and t + eps >= self._sim_time_limit:
                break
            if (self.real_time_factor == 0 and self.consumer_time is not None
                    and stats.steps % pace_every == 0):
                self._wait_for_consumers(t)
            elif self.real_time_factor > 0 and stats.steps % pace_every == 0:
                due = wall0 + (t - sim0) / self.real_time_factor
                delay = due - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                elif delay < -0.5:
                    # Far behind (machine busy): do not try to catch up in a burst.
                    wall0, sim0 = time.monotonic(), t
        stats.wall_s = perf() - loop_start

    def _start_render_worker(self) -> _RenderWorker | ProcessRenderWorker:
        if self.render_process:
            return ProcessRenderWorker(self.sim, self.on_image, self.stats, self._stop,
                                       self._thread.name)
        return _RenderWorker(self.sim, self.on_image, self.stats, self._stop,
                             self._thread.name)

    def _wait_for_consumers(self, t: float) -> None:
        assert self.consumer_time is not None
        give_up = time.monotonic() + 0.5  # nobody spinning: crawl on rather than hang
        while not self._stop.is_set():
            seen = self.consumer_time()
            if seen is None or t - seen <= self.max_lead_s:
                return
            if time.monotonic() > give_up:
                self.stats.crawls += 1
                return
            self.stats.waits += 1
            self._stop.wait(0.0002)
