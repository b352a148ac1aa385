"""`passeur sim` starts the simulator, prints its topics, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_passeur_sim_runs_and_stops_on_ctrl_c() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "passeur.cli", "sim", "--nodes", "sim,map_server",
         "--rtf", "max", "--camera-rate", "5"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120.0
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C to stop" in line:
                break
        output = "".join(lines)
        assert "Ctrl-C to stop" in output, output + (proc.stderr.read() if proc.stderr else "")
        for topic in ("/clock", "/odom", "/scan", "/camera/image_raw", "/camera/camera_info",
                      "/map"):
            assert topic in output
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "stopped" in out


@pytest.mark.parametrize("line, expected", [
    # YAML reads `1` as an integer; the parameter is a float
    ("max_linear_mps: 1", "parameter 'max_linear_mps' is 1 (a whole number) but must be a "
                          "number with a decimal point (write 1.0)"),
    ("max_linear_mps: 7.0", "parameter 'max_linear_mps' is 7.0, out of range: must be between "
                            "0.0 and 3.0"),
])
def test_bad_parameter_value_is_one_clear_line(tmp_path: Path, line: str, expected: str) -> None:
    params = tmp_path / "robot.yaml"
    params.write_text("/**:\n  ros__parameters:\n    world: library\n"
                      f"/**/safety:\n  ros__parameters:\n    {line}\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    result = subprocess.run(
        [sys.executable, "-m", "passeur.cli", "sim", "--nodes", "safety",
         "--params-file", str(params)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0] == f"passeur: error: {params}: node 'safety': {expected}; fix it in this file"
    assert "stopped" not in result.stdout  # nothing was started


def test_bad_namespace_is_one_clear_line() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    result = subprocess.run(
        [sys.executable, "-m", "passeur.cli", "sim", "--nodes", "sim", "--namespace", "2robots"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == ("passeur: error: --namespace '2robots': namespace must not "
                                     "have a token that starts with a number (e.g. robot1)")


@pytest.mark.parametrize("args, expected", [
    (["--namespace", "bad ns!"], "passeur: error: --namespace 'bad ns!': "),
    (["--nodes", "telepresence,simulator"], "passeur: error: unknown node(s) simulator; "),
])
def test_bad_options_are_refused_before_anything_is_printed(args: list[str],
                                                            expected: str) -> None:
    """With the telepresence node in the run, `passeur sim` makes and prints a staff password:
    not when the options are wrong (nothing is started)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    result = subprocess.run([sys.executable, "-m", "passeur.cli", "sim", *args], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == "", "printed before the options were checked"
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr
