"""Per-node executor threads: a failing callback is logged and the node keeps running; a node
that fails every time is stopped, and the stack notices."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from passeur import bringup


def _wait(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_a_failing_callback_is_logged_and_the_node_keeps_spinning(
        ros_context: Any, caplog: pytest.LogCaptureFixture) -> None:
    from rclpy.node import Node

    node = Node("flaky", context=ros_context)
    calls: list[int] = []

    def tick() -> None:
        calls.append(1)
        if len(calls) % 2:  # every other call fails
            raise RuntimeError("bad message")

    node.create_timer(0.01, tick)
    spinners = bringup.NodeSpinners(ros_context)
    spinners.add(node)
    try:
        with caplog.at_level(logging.ERROR, logger="passeur.bringup"):
            spinners.start()
            assert _wait(lambda: len(calls) >= 20, 10.0)
            assert spinners.alive()
        failures = [r for r in caplog.records if "callback of node flaky failed" in r.message]
        assert len(failures) == 1, "one log line per interval, not one per failure"
    finally:
        spinners.close()
        node.destroy_node()


def test_a_node_failing_every_time_is_stopped(ros_context: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from rclpy.node import Node

    monkeypatch.setattr(bringup, "MAX_FAILURES_IN_A_ROW", 5)
    node = Node("broken", context=ros_context)

    def tick() -> None:
        raise RuntimeError("always")

    node.create_timer(0.01, tick)
    spinners = bringup.NodeSpinners(ros_context)
    spinners.add(node)
    try:
        spinners.start()
        assert _wait(lambda: not spinners.alive(), 10.0), "the broken node kept spinning"
    finally:
        spinners.close()
        node.destroy_node()
