"""Run-time parameter changes (`ros2 param set`, rclpy's parameter services) on the running
stack are applied or refused, never reported as done while the node ignores them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rcl_interfaces.msg import Parameter as ParameterMsg
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.task import Future

from passeur.bringup import NODES
from tests.support.ros_harness import StackHarness

#: The safety node applies these at run time (SafetyNode._on_set_parameters).
SAFETY_RUNTIME = {"source_timeout_s", "scan_timeout_s", "status_rate_hz", "max_linear_mps",
                  "max_reverse_mps", "max_angular_rps", "max_linear_accel_mps2",
                  "max_angular_accel_rps2", "footprint_shape", "footprint_radius_m",
                  "footprint_polygon", "footprint_padding_m", "stop_margin_m",
                  "reaction_time_s", "braking_decel_mps2", "slowdown_margin_m",
                  "slowdown_min_ratio", "min_speed_mps", "allow_rotation_in_place",
                  "lidar_x_m", "lidar_y_m", "lidar_yaw_rad", "self_filter_radius_m"}
#: rclpy's own: use_sim_time is applied by rclpy's TimeSource.
RCLPY_OWN = {"use_sim_time", "start_type_description_service"}


def _result(h: StackHarness, future: Future, what: str) -> Any:
    h.wait_until(future.done, 10.0, what)
    return future.result()


def test_runtime_changes_are_applied_or_refused(ros_context: Any, tmp_path: Path) -> None:
    h = StackHarness(ros_context, common={"use_sim_time": True}, per_node={
        "sim": {"real_time_factor": 0.0, "camera_rate_hz": 0.0},
        "telepresence": {"http_port": 0, "ice_host_addresses": "127.0.0.1",
                         "audio_mic": "silence", "audio_speaker": "none"},
        "reading": {"progress_db": str(tmp_path / "p.sqlite3"), "play_on_speaker": "false"},
        "patrol": {"history_db": str(tmp_path / "h.sqlite3"), "schedule_enabled": False}})
    try:
        assert sorted(n.get_name() for n in h.stack.nodes) == sorted(s.name for s in NODES)
        for spec in NODES:
            client = AsyncParameterClient(h.probe, spec.name)
            assert client.wait_for_services(timeout_sec=10.0), spec.name
            names = list(_result(h, client.list_parameters(), f"{spec.name} list").result.names)
            values = _result(h, client.get_parameters(names), f"{spec.name} get").values
            descriptors = _result(h, client.describe_parameters(names),
                                  f"{spec.name} describe").descriptors
            for name, value, descriptor in zip(names, values, descriptors, strict=True):
                if name in RCLPY_OWN:
                    continue
                writable = spec.name == "safety" and name in SAFETY_RUNTIME
                # Setting the current value again: only whether the change is taken counts.
                param = Parameter.from_parameter_msg(ParameterMsg(name=name, value=value))
                result = _result(h, client.set_parameters([param]),
                                 f"{spec.name}.{name} set").results[0]
                where = f"{spec.name}.{name}"
                assert descriptor.read_only is not writable, where
                assert result.successful is writable, (where, result.reason)
                if not writable:
                    assert "read-only" in result.reason, (where, result.reason)
        # A change the safety node takes is in force at once.
        client = AsyncParameterClient(h.probe, "safety")
        result = _result(h, client.set_parameters([Parameter("max_linear_mps", value=0.2)]),
                         "safety set").results[0]
        assert result.successful, result.reason
        deadline = time.monotonic() + 5.0
        while h.node("safety").limits.max_linear_mps != 0.2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert h.node("safety").limits.max_linear_mps == 0.2
    finally:
        h.close()
