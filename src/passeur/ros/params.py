"""Declaring typed, described parameters, and loading the stack's parameter file.

Every node declares its parameters through `declare()` so that each has a description and,
for numbers, a range; values out of range are refused by rclpy at set time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter

from passeur.errors import ConfigError


def declare(
    node: Node,
    name: str,
    default: Any,
    description: str,
    *,
    min_value: float | None = None,
    max_value: float | None = None,
    read_only: bool = False,
) -> Any:
    """Declare one parameter with a description (and range) and return its value."""
    descriptor = ParameterDescriptor(description=description, read_only=read_only)
    if min_value is not None or max_value is not None:
        lo = min_value if min_value is not None else -1e300
        hi = max_value if max_value is not None else 1e300
        if isinstance(default, bool):
            pass
        elif isinstance(default, int):
            descriptor.integer_range = [
                IntegerRange(from_value=int(max(lo, -(2**62))), to_value=int(min(hi, 2**62)), step=0)
            ]
        elif isinstance(default, float):
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)
            ]
    return node.declare_parameter(name, default, descriptor).value


def _matches(key: str, node_name: str, namespace: str) -> bool:
    """ROS parameter-file node keys: `/**`, `/**/name`, `name`, `/ns/name`."""
    full = f"{namespace.rstrip('/')}/{node_name}" if namespace not in ("", "/") else f"/{node_name}"
    if key in ("/**", "**"):
        return True
    if key.startswith("/**/"):
        return key[4:] == node_name
    if key.startswith("/"):
        return key == full
    return key == node_name and namespace in ("", "/")


def load_parameter_file(path: Path, node_name: str, namespace: str = "") -> list[Parameter]:
    """Parameters for one node from a ROS 2 parameter YAML file (`/**` entries first).

    Raises ConfigError naming the file and the problem for anything malformed.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError("file not found; pass an existing parameter file", path) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML ({exc}); fix the syntax", path) from exc
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of node names to `ros__parameters`", path)
    # Wildcards first so that a node's own section overrides them.
    keys = sorted(data, key=lambda k: 0 if str(k).startswith("/**") and str(k) != "/**" else 1)
    keys = sorted(keys, key=lambda k: 0 if str(k) in ("/**", "**") else 1)
    out: dict[str, Any] = {}
    for key in keys:
        section = data[key]
        if not _matches(str(key), node_name, namespace):
            continue
        if not isinstance(section, dict) or "ros__parameters" not in section:
            raise ConfigError(f"section '{key}' must contain a 'ros__parameters' mapping", path)
        params = section["ros__parameters"] or {}
        if not isinstance(params, dict):
            raise ConfigError(f"'{key}.ros__parameters' must be a mapping", path)
        _flatten(params, "", out, path, str(key))
    return [Parameter(name, value=value) for name, value in out.items()]


def _flatten(tree: dict[str, Any], prefix: str, out: dict[str, Any], path: Path, key: str) -> None:
    for name, value in tree.items():
        full = f"{prefix}{name}"
        if isinstance(value, dict):
            _flatten(value, f"{full}.", out, path, key)
        elif value is None:
            raise ConfigError(f"parameter '{key}.{full}' has no value", path)
        elif isinstance(value, list) and len({type(v) for v in value}) > 1:
            raise ConfigError(f"parameter '{key}.{full}' mixes types in a list", path)
        else:
            out[full] = value
