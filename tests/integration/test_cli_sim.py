"""`passeur sim` as a user runs it: it lists its topics, drives, and Ctrl-C stops it cleanly
(zero velocity published last, no traceback, exit code 0)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from geometry_msgs.msg import Twist
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from passeur.ros import qos

ROOT = Path(__file__).resolve().parents[2]


def _read_lines(stream: Any, sink: list[str]) -> None:
    for line in iter(stream.readline, ""):
        sink.append(line)


def test_passeur_sim_ctrl_c_stops_cleanly(ros_context: Any, artifacts_dir: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, "-m", "passeur.cli", "sim", "--nodes", "sim,safety", "--rtf", "max",
         "--camera-rate", "0"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out: list[str] = []
    err: list[str] = []
    readers = [threading.Thread(target=_read_lines, args=(proc.stdout, out), daemon=True),
               threading.Thread(target=_read_lines, args=(proc.stderr, err), daemon=True)]
    for r in readers:
        r.start()
    node = Node("cli_probe", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    received: list[Twist] = []
    node.create_subscription(Twist, "cmd_vel", received.append, qos.COMMAND)
    teleop = node.create_publisher(Twist, "cmd_vel/teleop", qos.COMMAND)
    # Turning in place: never stopped by the collision monitor, so a zero at the end can only
    # come from the shutdown (driving forward would soon meet a wall at --rtf max).
    forward = Twist()
    forward.angular.z = 0.5

    def spin_until(predicate: Any, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            if proc.poll() is not None and what != "exit":
                break
            teleop.publish(forward)
            executor.spin_once(timeout_sec=0.02)
        raise AssertionError(f"{what}: not within {timeout_s} s; stdout {''.join(out)!r} "
                             f"stderr {''.join(err)[-2000:]!r}")

    try:
        spin_until(lambda: any("Ctrl-C to stop." in line for line in out), 120.0, "started")
        published = next(line for line in out if line.startswith("publishing:")).split()[1:]
        for topic in ("/clock", "/odom", "/scan", "/cmd_vel", "/estop/state", "/safety/status"):
            assert topic in published, f"{topic} missing from {published}"
        # it drives: safety forwards the (cross-process) teleop command
        spin_until(lambda: received and received[-1].angular.z > 0.4, 60.0, "turning")
        proc.send_signal(signal.SIGINT)
        # keep the pilot pushing while it shuts down: the last word must still be zero
        spin_until(lambda: proc.poll() is not None, 60.0, "exit")
        end = time.monotonic() + 1.0
        while time.monotonic() < end:  # collect what was in flight
            executor.spin_once(timeout_sec=0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for r in readers:
            r.join(5)
        executor.shutdown()
        node.destroy_node()
        (artifacts_dir / "stdout.txt").write_text("".join(out))
        (artifacts_dir / "stderr.txt").write_text("".join(err))
    stdout, stderr = "".join(out), "".join(err)
    assert proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stdout + stderr, stderr[-3000:]
    assert "passeur: stopped (zero velocity sent)." in stdout
    assert received, "no cmd_vel seen"
    assert received[-1].linear.x == 0.0 and received[-1].angular.z == 0.0
