"""The robot and worlds pass the ROS/Gazebo validators (check_urdf, ign sdf -k)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from passeur.paths import share_path
from passeur.sim.mujoco_model import default_urdf_path, describe_robot, expand_xacro
from passeur.sim.sdf_world import available_worlds


def test_expanded_urdf_passes_check_urdf(tmp_path: Path) -> None:
    tool = shutil.which("check_urdf")
    if tool is None:
        pytest.skip("check_urdf not installed (Debian package liburdfdom-tools)")
    urdf = tmp_path / "passeur.urdf"
    urdf.write_text(expand_xacro(default_urdf_path()))
    result = subprocess.run([tool, str(urdf)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Successfully Parsed XML" in result.stdout
    for link in ("base_link", "lidar_link", "camera_link", "camera_optical_link",
                 "left_wheel_link", "right_wheel_link", "screen_link"):
        assert link in result.stdout


def test_robot_description_matches_the_interface() -> None:
    robot = describe_robot(expand_xacro(default_urdf_path()))
    assert robot.lidar_samples == 360
    assert (robot.lidar_min_range_m, robot.lidar_max_range_m) == (0.12, 12.0)
    assert (robot.camera_width, robot.camera_height) == (640, 480)
    assert robot.base_radius_m * 2 == pytest.approx(0.45)


@pytest.mark.parametrize("world", available_worlds())
def test_world_passes_ign_sdf_check(world: str) -> None:
    tool = shutil.which("ign") or shutil.which("gz")
    if tool is None:
        pytest.skip("ign/gz not installed (Debian packages ignition-tools libsdformat-dev ruby)")
    path = share_path("sim", "worlds", f"{world}.sdf")
    assert 'version="1.9"' in path.read_text()
    result = subprocess.run([tool, "sdf", "-k", str(path)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0 and "Valid" in result.stdout, result.stdout + result.stderr
