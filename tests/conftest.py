"""Shared test setup: ROS stays on localhost, logs in a temp dir, a fresh rclpy context.

Tiers: tests/unit (pure logic), tests/integration (nodes + simulator), tests/e2e (browser).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"

# Before anything imports rclpy or mujoco.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
# A random domain per test run, so parallel runs on one machine never see each other.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random().randint(1, 100)))
from passeur.rosenv import configure_environment  # noqa: E402

configure_environment()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        elif "e2e" in parts:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    """A folder kept after the run (test-artifacts/<test name>) for images, logs, reports."""
    folder = ARTIFACTS / request.node.name.replace("/", "_").replace("[", "_").replace("]", "")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def ros_context() -> Iterator[object]:
    """A fresh rclpy context for one test (init/shutdown costs ~6 ms)."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        rclpy.try_shutdown(context=context)
