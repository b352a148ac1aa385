"""Safety parameters -> validated settings (start-up and run-time changes)."""

from __future__ import annotations

from typing import Any

import pytest

from passeur.paths import share_dir
from passeur.ros.params import load_parameter_file
from passeur.safety.exceptions import SafetyConfigError
from passeur.safety.settings import settings_from_parameters


def shipped() -> dict[str, Any]:
    params = load_parameter_file(share_dir() / "config" / "passeur.yaml", "safety")
    return {p.name: p.value for p in params}


def test_shipped_config_builds_the_documented_robot() -> None:
    s = settings_from_parameters(shipped())
    assert s.limits.max_linear_mps == 0.5
    assert s.collision.footprint.radius_m == pytest.approx(0.225)  # urdf base_radius
    assert s.collision.mount.x_m == pytest.approx(0.10)  # urdf lidar_x
    assert s.source_timeout_s == pytest.approx(0.3)
    assert s.status_period_s == pytest.approx(0.2)


def test_polygon_footprint_from_parameters() -> None:
    values = shipped() | {"footprint_shape": "polygon"}
    s = settings_from_parameters(values)
    assert not s.collision.footprint.is_circle
    assert s.collision.footprint.vertices.shape == (4, 2)


@pytest.mark.parametrize("name, value, message", [
    ("footprint_shape", "triangle", "footprint_shape"),
    ("source_timeout_s", 0.0, "source_timeout_s"),
    ("scan_timeout_s", -1.0, "scan_timeout_s"),
    ("braking_decel_mps2", 0.0, "braking_decel_mps2"),
    ("max_linear_mps", float("nan"), "max_linear_mps"),
    ("footprint_polygon", [1.0, 2.0], "footprint_polygon"),
])
def test_bad_values_name_the_parameter(name: str, value: Any, message: str) -> None:
    values = shipped() | {name: value}
    if name == "footprint_polygon":
        values["footprint_shape"] = "polygon"
    with pytest.raises(SafetyConfigError, match=message):
        settings_from_parameters(values)


def test_missing_parameter_is_named() -> None:
    values = shipped()
    del values["stop_margin_m"]
    with pytest.raises(SafetyConfigError, match="stop_margin_m"):
        settings_from_parameters(values)
