"""The safety node: the only publisher of `cmd_vel`.

    cmd_vel/teleop, cmd_vel/nav (Twist)  -> velocity mux (e-stop > teleop > navigation)
    -> speed clamp -> acceleration limit -> collision monitor on `scan` -> cmd_vel

`cmd_vel` is published from a timer at `rate_hz` on the node clock (sim time honoured), zero
when nothing asks for motion, so a base driver's own watchdog stays fed; also at once when a
scan arrives or the e-stop changes, so braking never waits for the next tick. Fail-safes: a source
silent for `source_timeout_s` counts as zero, from that instant (a one-shot timer per source:
zero is published at the first clock reading at or after the timeout, i.e. within one `/clock`
period in simulation, not one tick later); without a scan for `scan_timeout_s` the robot
does not translate at all (noticed at the next tick or scan); the e-stop (topic `estop`, with
latched or default QoS, or service `estop/set`) forces zero at once.

`safety/status` (DiagnosticStatus, name "safety"; on every change and at `status_rate_hz`):
level OK / WARN (e-stop, slowdown or stop zone) / ERROR (no recent scan); values `source`
(estop, teleop, nav, none), `estop` (true/false), `reason` (none, estop, let_go_first,
scan_timeout, stop_zone, slowdown_zone, speed_limit, accel_limit; let_go_first: the source
still asks for the motion it asked for when the e-stop was released, and is held at zero
until it sends zero or falls silent, see velocity_mux.py), `closest_obstacle_m` (footprint edge to
nearest scan point), `free_distance_m`, `stop_distance_m`, `linear_mps`, `angular_rps`,
`scan_age_s`.
"""

from __future__ import annotations

import functools
import math
import threading
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.subscription import MessageInfo
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Bool
from std_srvs.srv import SetBool

from passeur.ros import qos
from passeur.ros.params import declare
from passeur.safety.collision_monitor import STOP, CheckResult, CollisionMonitor
from passeur.safety.exceptions import SafetyConfigError
from passeur.safety.limits import ZERO, AccelerationLimiter, Velocity
from passeur.safety.settings import SafetySettings, settings_from_parameters
from passeur.safety.velocity_mux import ESTOP, NAV, TELEOP, PublisherSequence, VelocityMux

#: limiting reasons reported in safety/status
REASON_NONE = "none"
REASON_ESTOP = "estop"
REASON_LET_GO = "let_go_first"
REASON_SCAN_TIMEOUT = "scan_timeout"
REASON_SPEED_LIMIT = "speed_limit"
REASON_ACCEL_LIMIT = "accel_limit"
REASON_SLOWDOWN = "slowdown_zone"
REASON_STOP = "stop_zone"

DEFAULT_POLYGON = [0.225, 0.225, -0.225, 0.225, -0.225, -0.225, 0.225, -0.225]


def twist_to_velocity(msg: Twist) -> Velocity:
    return Velocity(float(msg.linear.x), float(msg.angular.z))


def velocity_to_twist(cmd: Velocity) -> Twist:
    msg = Twist()
    msg.linear.x = float(cmd.linear_mps)
    msg.angular.z = float(cmd.angular_rps)
    return msg


class SafetyNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("safety", **kwargs)
        try:
            self._setup()
        except BaseException:
            self.destroy_node()  # a half-built node must not linger in the context
            raise

    def _setup(self) -> None:
        p = self._declare_parameters()
        self._parameter_names = tuple(p)
        self.rate_hz: float = p["rate_hz"]
        settings = settings_from_parameters(p)
        self.monitor = CollisionMonitor(settings.collision)
        self.mux = VelocityMux(timeout_s=settings.source_timeout_s, sources=(TELEOP, NAV))
        self.limiter = AccelerationLimiter(settings.limits)
        # One one-shot timer per source, restarted by each of its commands: it fires exactly
        # source_timeout_s after the last one, so zero goes out then, not at the next tick.
        # (functools.partial, not `lambda source=source:`: rclpy hands a TimerInfo to a timer
        # callback that takes an argument, and the EventsExecutor does so for the lambda.)
        self._silence_timers = {
            source: self.create_timer(settings.source_timeout_s,
                                      functools.partial(self._on_silence, source),
                                      autostart=False)
            for source in self.mux.sources}
        self._apply(settings)

        self._lock = threading.Lock()
        self._closed = False
        self._points = np.zeros((0, 2))
        self._scan_time_s: float | None = None
        self._last_tick_s: float | None = None
        self._last_status_s = -math.inf
        self._last_key: tuple[str, bool, str] | None = None
        self._last_out = ZERO
        self._last_check: CheckResult | None = None
        self._source = "none"
        self._reason = REASON_NONE

        self.cmd_pub = self.create_publisher(Twist, "cmd_vel", qos.COMMAND)
        self.estop_pub = self.create_publisher(Bool, "estop/state", qos.LATCHED)
        self.status_pub = self.create_publisher(DiagnosticStatus, "safety/status", qos.STATUS)
        self.create_subscription(Twist, "cmd_vel/teleop",
                                 lambda m: self._on_command(TELEOP, m), qos.COMMAND)
        self.create_subscription(Twist, "cmd_vel/nav",
                                 lambda m: self._on_command(NAV, m), qos.COMMAND)
        self.create_subscription(LaserScan, "scan", self._on_scan, qos.SENSOR)
        # Two subscriptions on `estop`: a latched (transient-local) one, so a late-starting
        # safety node still gets an e-stop engaged before it, and a volatile one, because DDS
        # never matches a volatile publisher (a button driver with default QoS) with a
        # transient-local subscription and would drop its messages silently. A latched
        # publisher reaches both: copies and stale messages are dropped by sequence number.
        self._estop_sequence = PublisherSequence()
        self.create_subscription(Bool, "estop", self._on_estop, qos.LATCHED)
        self.create_subscription(Bool, "estop", self._on_estop, qos.ROS_DEFAULT)
        self.create_service(SetBool, "estop/set", self._on_estop_service)
        self._publish_estop_state()
        self._timer = self.create_timer(1.0 / self.rate_hz, self._tick)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _apply(self, settings: SafetySettings) -> None:
        self.settings = settings
        self.limits = settings.limits
        self.limiter.limits = settings.limits
        self.monitor.config = settings.collision
        self.mux.timeout_s = settings.source_timeout_s
        for timer in self._silence_timers.values():
            timer.timer_period_ns = int(round(settings.source_timeout_s * 1e9))
        self.scan_timeout_s = settings.scan_timeout_s
        self.status_period_s = settings.status_period_s

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Run-time changes (`ros2 param set safety ...`): all valid, or none applied."""
        values = {name: self.get_parameter(name).value for name in self._parameter_names}
        for param in params:
            if param.name in values:
                values[param.name] = param.value
        try:
            settings = settings_from_parameters(values)
        except SafetyConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        with self._lock:
            self._apply(settings)
        self.get_logger().info("safety parameters updated: "
                               + ", ".join(f"{p.name}={p.value}" for p in params))
        return SetParametersResult(successful=True)

    # -- parameters -------------------------------------------------------------------------
    def _declare_parameters(self) -> dict[str, Any]:
        d: dict[str, Any] = {}

        def num(name: str, default: float, description: str, lo: float, hi: float) -> None:
            d[name] = float(declare(self, name, float(default), description,
                                    min_value=lo, max_value=hi, read_only=False))

        d["rate_hz"] = float(declare(self, "rate_hz", 30.0, "cmd_vel output rate (Hz, node "
                                     "clock); fixed at start-up", min_value=5.0,
                                     max_value=200.0, read_only=True))
        num("source_timeout_s", 0.3, "an input silent this long counts as zero (s)", 0.05, 5.0)
        num("scan_timeout_s", 0.5, "without a scan this long the robot does not translate (s)",
            0.05, 10.0)
        num("status_rate_hz", 5.0, "safety/status rate when nothing changes (Hz)", 0.1, 50.0)
        num("max_linear_mps", 0.5, "top forward speed (m/s)", 0.0, 3.0)
        num("max_reverse_mps", 0.25, "top backward speed (m/s)", 0.0, 3.0)
        num("max_angular_rps", 1.5, "top yaw rate (rad/s)", 0.0, 6.0)
        num("max_linear_accel_mps2", 1.0, "linear acceleration limit (m/s^2); braking is "
            "never limited", 0.01, 20.0)
        num("max_angular_accel_rps2", 3.0, "yaw acceleration limit (rad/s^2)", 0.01, 50.0)
        d["footprint_shape"] = str(declare(
            self, "footprint_shape", "circle",
            "robot outline: 'circle' (footprint_radius_m) or 'polygon' (footprint_polygon)",
            read_only=False))
        num("footprint_radius_m", 0.225, "radius of a round base (m)", 0.01, 2.0)
        d["footprint_polygon"] = list(declare(
            self, "footprint_polygon", DEFAULT_POLYGON,
            "convex outline [x1, y1, x2, y2, ...] in base_link (m), for footprint_shape polygon",
            read_only=False))
        num("footprint_padding_m", 0.02, "clearance added around the footprint (m)", 0.0, 0.5)
        num("stop_margin_m", 0.10, "stop zone depth at rest: closest approach to an obstacle (m)",
            0.0, 2.0)
        num("reaction_time_s", 0.2, "scan age + control delay, travelled before braking (s)",
            0.0, 2.0)
        num("braking_decel_mps2", 1.0, "deceleration the base achieves when told to stop "
            "(m/s^2); the stop zone grows as v^2 / (2 * this)", 0.05, 20.0)
        num("slowdown_margin_m", 0.5, "slowdown zone depth beyond the stop zone (m)", 0.0, 5.0)
        num("slowdown_min_ratio", 0.3, "speed fraction kept at the inner edge of the slowdown "
            "zone", 0.0, 1.0)
        num("min_speed_mps", 0.02, "speeds below this are sent as zero near obstacles (m/s)",
            0.0, 0.5)
        d["allow_rotation_in_place"] = bool(declare(
            self, "allow_rotation_in_place", True,
            "polygon footprints: allow turning in place near obstacles (round bases always may)",
            read_only=False))
        num("lidar_x_m", 0.10, "lidar position in base_link, x (m)", -2.0, 2.0)
        num("lidar_y_m", 0.0, "lidar position in base_link, y (m)", -2.0, 2.0)
        num("lidar_yaw_rad", 0.0, "lidar yaw in base_link (rad)", -math.pi, math.pi)
        num("self_filter_radius_m", 0.18, "scan returns closer than this to base_link are the "
            "robot's own body (the mast crosses the scan plane), not obstacles (m; 0 = keep "
            "all; below the footprint's inscribed radius)", 0.0, 2.0)
        return d

    # -- inputs -----------------------------------------------------------------------------
    def _now_s(self) -> float:
        return float(self.get_clock().now().nanoseconds) * 1e-9

    def _on_command(self, source: str, msg: Twist) -> None:
        cmd = twist_to_velocity(msg)
        if not (math.isfinite(cmd.linear_mps) and math.isfinite(cmd.angular_rps)):
            self.get_logger().warning(f"non-finite command on cmd_vel/{source}: treated as zero",
                                      throttle_duration_sec=5.0)
            cmd = ZERO
        with self._lock:
            self.mux.update(source, cmd, self._now_s())
            self._silence_timers[source].reset()

    def _on_silence(self, source: str) -> None:
        """`source` has been silent for source_timeout_s: decide now (one shot)."""
        with self._lock:
            timer = self._silence_timers[source]
            if self.mux.is_active(source, self._now_s()):
                # A command came in the same executor round, after this timer was due: it
                # restarted the timer, which must keep running (not be cancelled).
                timer.reset()
                return
            timer.cancel()
        self._tick()

    def _on_scan(self, msg: LaserScan) -> None:
        try:
            points = self.monitor.points_from_scan(
                np.asarray(msg.ranges, dtype=np.float64), msg.angle_min, msg.angle_increment,
                msg.range_min, msg.range_max)
        except ValueError as exc:
            self.get_logger().warning(f"ignoring malformed scan: {exc}", throttle_duration_sec=5.0)
            return
        with self._lock:
            self._points = points
            self._scan_time_s = self._now_s()
        # Judge the new scan at once rather than at the next tick: one tick less between an
        # obstacle appearing and the robot braking.
        self._tick()

    def _on_estop(self, msg: Bool, info: MessageInfo) -> None:
        gid = info.get("publisher_gid")
        publisher = bytes(gid["data"]) if isinstance(gid, dict) and "data" in gid else None
        if not self._estop_sequence.is_new(publisher, info.get("publication_sequence_number")):
            return  # the other subscription's copy, or older than what was applied
        self.set_estop(bool(msg.data), "estop topic")

    def _on_estop_service(self, request: Any, response: Any) -> Any:
        self.set_estop(bool(request.data), "estop/set service")
        response.success = True
        response.message = "e-stop engaged" if request.data else "e-stop released"
        return response

    def set_estop(self, engaged: bool, origin: str = "api") -> None:
        with self._lock:
            if self._closed:
                return
            changed = engaged != self.mux.estop
            self.mux.set_estop(engaged)
            if engaged:  # do not wait for the next tick
                self.limiter.reset(ZERO)
                self._last_out = ZERO
                self.cmd_pub.publish(velocity_to_twist(ZERO))
        if changed:
            self.get_logger().warning(
                f"e-stop {'ENGAGED' if engaged else 'released'} ({origin})")
            self._publish_estop_state()
            self._tick()

    def _publish_estop_state(self) -> None:
        self.estop_pub.publish(Bool(data=self.mux.estop))

    # -- the control tick -------------------------------------------------------------------
    def _tick(self) -> None:
        with self._lock:
            if self._closed:
                return
            now = self._now_s()
            period = 1.0 / self.rate_hz
            dt = period if self._last_tick_s is None else now - self._last_tick_s
            dt = min(max(dt, 0.0), 2.0 * period)  # a stalled clock must not allow a jump
            self._last_tick_s = now
            chosen = self.mux.select(now)
            for source in chosen.stale:
                self.get_logger().info(f"cmd_vel/{source} silent for more than "
                                       f"{self.mux.timeout_s:.2f} s: counted as zero")
            out, reason, check = self._decide(chosen.source, chosen.command, now, dt)
            if chosen.held:
                reason = REASON_LET_GO
                self.get_logger().warning(
                    f"cmd_vel/{chosen.source} still asks for the motion it asked for when the "
                    "e-stop was released: held at zero until it sends zero or falls silent",
                    throttle_duration_sec=5.0)
            self.limiter.reset(out)
            self._last_out = out
            self._last_check = check
            self._source, self._reason = chosen.source, reason
            self.cmd_pub.publish(velocity_to_twist(out))
            key = (chosen.source, self.mux.estop, reason)
            if key != self._last_key or now - self._last_status_s >= self.status_period_s:
                self._last_key = key
                self._last_status_s = now
                self.status_pub.publish(self._status(now, out))

    def _decide(self, source: str, requested: Velocity, now: float, dt: float
                ) -> tuple[Velocity, str, CheckResult | None]:
        if source == ESTOP:
            return ZERO, REASON_ESTOP, None
        clamped = self.limits.clamp(requested)
        scan_age = math.inf if self._scan_time_s is None else now - self._scan_time_s
        if not -self.scan_timeout_s <= scan_age <= self.scan_timeout_s:  # old, or clock reset
            cfg = self.monitor.config
            turn_ok = cfg.footprint.is_circle or cfg.allow_rotation_in_place
            out = Velocity(0.0, clamped.angular_rps if turn_ok else 0.0)
            return self.limiter.step(out, dt)[0], REASON_SCAN_TIMEOUT, None
        # The monitor judges the requested command; the acceleration limit then ramps towards
        # what it allows (a decrease passes at once, so the limit is never exceeded).
        travelled = abs(self._last_out.linear_mps) * max(0.0, scan_age)
        check = self.monitor.check(clamped, self._points, travelled)
        out, accel_limited = self.limiter.step(check.command, dt)
        if check.limited:
            return out, (REASON_STOP if check.zone == STOP else REASON_SLOWDOWN), check
        if clamped != requested:
            return out, REASON_SPEED_LIMIT, check
        if accel_limited:
            return out, REASON_ACCEL_LIMIT, check
        return out, REASON_NONE, check

    def _status(self, now: float, out: Velocity) -> DiagnosticStatus:
        status = DiagnosticStatus()
        status.name = "safety"
        status.hardware_id = self.get_fully_qualified_name()
        estop = self.mux.estop
        reason = self._reason
        if reason == REASON_SCAN_TIMEOUT:
            status.level = DiagnosticStatus.ERROR
            status.message = "no recent scan: translation stopped"
        elif estop:
            status.level = DiagnosticStatus.WARN
            status.message = "e-stop engaged"
        elif reason == REASON_LET_GO:
            status.level = DiagnosticStatus.WARN
            status.message = (f"e-stop released: cmd_vel/{self._source} held at zero until it "
                              "sends zero")
        elif reason in (REASON_STOP, REASON_SLOWDOWN):
            status.level = DiagnosticStatus.WARN
            status.message = f"obstacle: {reason.replace('_', ' ')}"
        else:
            status.level = DiagnosticStatus.OK
            status.message = f"ok ({reason.replace('_', ' ')})" if reason != REASON_NONE else "ok"
        closest = self.monitor.closest_distance_m(self._points) if self._scan_time_s else math.inf
        scan_age = now - self._scan_time_s if self._scan_time_s is not None else math.inf
        check = self._last_check
        values = {
            "source": self._source,
            "estop": "true" if estop else "false",
            "reason": reason,
            "closest_obstacle_m": f"{closest:.3f}",
            "free_distance_m": f"{check.free_distance_m:.3f}" if check else "inf",
            "stop_distance_m": f"{check.stop_distance_m:.3f}" if check else
            f"{self.monitor.config.stop_distance_m(0.0):.3f}",
            "linear_mps": f"{out.linear_mps:.3f}",
            "angular_rps": f"{out.angular_rps:.3f}",
            "scan_age_s": f"{scan_age:.3f}",
        }
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        return status

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def estop(self) -> bool:
        return self.mux.estop

    def status_snapshot(self) -> dict[str, Any]:
        """Current source, reason and output (for tests and the staff page)."""
        with self._lock:
            return {"source": self._source, "reason": self._reason, "estop": self.mux.estop,
                    "linear_mps": self._last_out.linear_mps,
                    "angular_rps": self._last_out.angular_rps}

    def close(self) -> None:
        """Stop the output timer and send one zero Twist. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._timer.cancel()
            for timer in self._silence_timers.values():
                timer.cancel()
            self._last_out = ZERO
            try:
                self.cmd_pub.publish(velocity_to_twist(ZERO))
            except Exception as exc:  # noqa: BLE001 - context already shut down: nothing to do
                self.get_logger().warning(f"could not publish the final zero velocity: {exc}")
