"""`passeur sim`'s options: one left out keeps the parameter file's value; `--nodes` as
typed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import passeur.cli
from passeur.bringup import StackOptions
from passeur.ros.params import load_parameter_file


def _options(monkeypatch: pytest.MonkeyPatch, *args: str, nodes: str = "sim") -> StackOptions:
    seen: list[StackOptions] = []

    def fake_run_stack(options: StackOptions, **_kwargs: Any) -> int:
        seen.append(options)
        return 0

    monkeypatch.setattr(passeur.cli, "run_stack", fake_run_stack)
    assert passeur.cli.main(["sim", "--nodes", nodes, *args]) == 0
    return seen[0]


def test_sim_options_left_out_keep_the_parameter_files_values(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    params = tmp_path / "fast.yaml"
    params.write_text("/**/sim:\n  ros__parameters:\n    real_time_factor: 0.0\n"
                      "    camera_rate_hz: 0.0\n    seed: 7\n", encoding="utf-8")
    options = _options(monkeypatch, "--params-file", str(params))
    # What the simulator is given: the file's values, then the options on top.
    values = {p.name: p.value for p in load_parameter_file(params, "sim")}
    values.update(options.per_node.get("sim", {}))
    assert values == {"real_time_factor": 0.0, "camera_rate_hz": 0.0, "seed": 7}


def test_sim_options_given_override_the_parameter_file(monkeypatch: pytest.MonkeyPatch) -> None:
    options = _options(monkeypatch, "--rtf", "max", "--camera-rate", "5", "--seed", "3")
    assert options.per_node["sim"] == {"real_time_factor": 0.0, "camera_rate_hz": 5.0, "seed": 3}
    assert _options(monkeypatch, "--rtf", "2").per_node["sim"] == {"real_time_factor": 2.0}


@pytest.mark.parametrize("nodes, expected", [
    ("sim, safety", ["sim", "safety"]),  # as one writes a list in prose
    (" sim,safety,", ["sim", "safety"]),
    ("sim", ["sim"]),
])
def test_nodes_list_ignores_spaces_and_empty_items(monkeypatch: pytest.MonkeyPatch, nodes: str,
                                                   expected: list[str]) -> None:
    assert _options(monkeypatch, nodes=nodes).only == expected


def test_a_subset_without_the_simulator_says_it_waits_for_a_clock(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """On sim time with no /clock, the safety node's timers never fire: no cmd_vel, no
    safety/status, and nothing said about why."""
    _options(monkeypatch, nodes="safety")
    out = capsys.readouterr().out
    assert "without 'sim': these nodes run on sim time and wait for /clock" in out
    assert "passeur robot" in out
    _options(monkeypatch, nodes="sim,safety")
    assert "/clock" not in capsys.readouterr().out


def test_passeur_stack_refuses_unknown_options_but_takes_ros_args(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`passeur_stack --param-file my.yaml` (a typo) used to run with config/passeur.yaml."""
    import passeur.bringup

    seen: list[StackOptions] = []
    monkeypatch.setattr(passeur.bringup, "run_stack",
                        lambda options, **_kw: seen.append(options) or 0)
    with pytest.raises(SystemExit) as info:
        passeur.bringup.main(["--profile", "external", "--param-file", "my.yaml"])
    assert info.value.code == 2
    assert "unrecognized arguments: --param-file my.yaml" in capsys.readouterr().err
    assert seen == []
    # what ros2 launch / ros2 run add is not ours to read
    assert passeur.bringup.main(["--profile", "external", "--nodes", "safety", "--ros-args",
                                 "-r", "__ns:=/robot1", "--log-level", "info"]) == 0
    assert seen[0].only == ["safety"] and seen[0].profile == "external"


def test_robot_help_does_not_send_gazebo_users_to_a_second_stack(
        capsys: pytest.CaptureFixture[str]) -> None:
    """gazebo.launch.py runs the stack itself (README): `passeur robot` beside it is a second
    cmd_vel publisher and a web-port clash, yet the help offered it for Gazebo."""
    with pytest.raises(SystemExit):
        passeur.cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "not with gazebo.launch.py, which runs the stack itself" in text
    assert "drivers / Gazebo" not in text and "or Gazebo provide" not in text
