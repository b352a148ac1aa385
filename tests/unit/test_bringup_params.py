from __future__ import annotations

from pathlib import Path

import pytest

from passeur.bringup import EXTERNAL, NODES, SIM, specs_for
from passeur.errors import ConfigError
from passeur.paths import ensure_dev_prefix, share_dir
from passeur.ros.params import load_parameter_file


def test_every_node_is_in_a_profile_and_sim_only_in_sim() -> None:
    assert {s.name for s in specs_for(SIM)} == {s.name for s in NODES}
    assert "sim" not in {s.name for s in specs_for(EXTERNAL)}


def test_unknown_node_subset_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown node"):
        specs_for(SIM, ["sim", "teleporter"])


def test_a_node_of_another_profile_is_a_clear_error() -> None:
    """`passeur robot --nodes sim,safety` ran the safety node alone, and `--nodes sim` no
    node at all, without a word."""
    with pytest.raises(ConfigError) as info:
        specs_for(EXTERNAL, ["sim", "safety"])
    assert str(info.value) == (
        "node(s) sim not in profile 'external' (the simulator runs with `passeur sim` / "
        "sim.launch.py only); choose from map_server, safety, navigator, patrol, reading, "
        "telepresence")


def test_parameter_file_wildcards_and_node_sections(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(
        "/**:\n  ros__parameters:\n    world: chateau\n    rate: 1.0\n"
        "/**/sim:\n  ros__parameters:\n    rate: 2.0\n    camera: {width: 640}\n"
        "/robot1/safety:\n  ros__parameters:\n    rate: 3.0\n"
    )
    sim = {p.name: p.value for p in load_parameter_file(f, "sim", "/robot1")}
    assert sim == {"world": "chateau", "rate": 2.0, "camera.width": 640}
    safety = {p.name: p.value for p in load_parameter_file(f, "safety", "/robot1")}
    assert safety["rate"] == 3.0
    other = {p.name: p.value for p in load_parameter_file(f, "safety", "")}
    assert other["rate"] == 1.0


@pytest.mark.parametrize(
    "text, problem",
    [("a: [1, 2", "not valid YAML"), ("- 1\n- 2\n", "mapping"),
     ("/**:\n  params: {}\n", "ros__parameters"), ("/**:\n  ros__parameters:\n    x:\n", "no value")],
)
def test_malformed_parameter_file_names_file_and_problem(tmp_path: Path, text: str, problem: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=problem) as info:
        load_parameter_file(f, "sim")
    assert "bad.yaml" in str(info.value)


def test_unreadable_parameter_file_is_a_clear_error(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.yaml"  # saved by an editor in Latin-1, not UTF-8
    latin1.write_bytes("/**:\n  ros__parameters:\n    world: biblioth\u00e8que\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="latin1.yaml: not UTF-8 text"):
        load_parameter_file(latin1, "sim")
    with pytest.raises(ConfigError, match="cannot read the parameter file") as info:
        load_parameter_file(tmp_path, "sim")  # a folder given for the file
    assert str(tmp_path) in str(info.value)


def test_shipped_parameter_file_parses() -> None:
    for spec in NODES:
        load_parameter_file(share_dir() / "config" / "passeur.yaml", spec.name)


def test_package_share_directory_resolves_in_development_setup() -> None:
    from ament_index_python.packages import get_package_share_directory

    ensure_dev_prefix()
    share = Path(get_package_share_directory("passeur"))
    assert (share / "package.xml").is_file()
    assert (share / "config" / "passeur.yaml").is_file()


@pytest.mark.parametrize("default, given, kwargs, expected", [
    (0.5, 2, {}, "parameter 'p' is 2 (a whole number) but must be a number with a decimal "
                 "point (write 2.0)"),
    (3, 1.5, {}, "parameter 'p' is 1.5 (a number with a decimal point) but must be a whole "
                 "number"),
    ("circle", 3, {}, "parameter 'p' is 3 (a whole number) but must be text (quote it)"),
    ([0.1, 0.2], [1, 2], {}, "parameter 'p' is [1, 2] (a list of whole numbers) but must be a "
                             "list of numbers with a decimal point (write [1.0, 2.0])"),
    (4, -1, {"min_value": 0}, "parameter 'p' is -1, out of range: must be at least 0"),
    (0.5, 9.0, {"min_value": 0.0, "max_value": 1.0},
     "parameter 'p' is 9.0, out of range: must be between 0.0 and 1.0"),
])
def test_refused_parameter_values_say_what_to_write(default: object, given: object,
                                                    kwargs: dict[str, float],
                                                    expected: str) -> None:
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from passeur.ros.params import ParameterValueError, declare

    context = Context()
    rclpy.init(context=context)
    try:
        node = Node("params_probe", context=context,
                    parameter_overrides=[Parameter("p", value=given)])
        with pytest.raises(ParameterValueError) as info:
            declare(node, "p", default, "a parameter", **kwargs)  # type: ignore[arg-type]
        assert str(info.value) == expected
        assert info.value.name == "p"
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


def test_a_misspelt_parameter_is_refused_at_start_up(tmp_path: Path, ros_context: object) -> None:
    """rclpy ignores an override nobody declares: `max_linaer_mps` would leave the safety
    node's default speed limit in force without a word."""
    from passeur.bringup import Stack, StackOptions

    f = tmp_path / "robot.yaml"
    f.write_text("/**/safety:\n  ros__parameters:\n    max_linaer_mps: 0.2\n"
                 "/**/teleporter:\n  ros__parameters:\n    anything: 1\n")
    with pytest.raises(ConfigError) as info:
        Stack(StackOptions(profile=EXTERNAL, params_file=f, only=["safety"]),
              context=ros_context)
    message = str(info.value)
    assert "robot.yaml" in message and "'/**/safety' sets 'max_linaer_mps'" in message
    assert "did you mean 'max_linear_mps'?" in message
    assert "teleporter" not in message  # sections for other nodes (Nav2's, ...) are theirs
    f.write_text("/**/safety:\n  ros__parameters:\n    max_linear_mps: 0.2\n")
    stack = Stack(StackOptions(profile=EXTERNAL, params_file=f, only=["safety"]),
                  context=ros_context)
    try:
        assert stack.nodes[0].get_parameter("max_linear_mps").value == 0.2
    finally:
        stack.close()


def test_a_misspelt_node_section_is_pointed_out(tmp_path: Path, ros_context: object,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """`/**/safty:` matches no node: rclpy applies none of its values (the speed limit of a
    museum with children stays the default) and nothing used to say so."""
    from passeur.bringup import Stack, StackOptions
    from passeur.ros.params import misspelt_sections

    f = tmp_path / "museum.yaml"
    f.write_text("/**/safty:\n  ros__parameters:\n    max_linear_mps: 0.2\n"
                 "navigtor:\n  ros__parameters: {}\n"
                 "/robot2/safety:\n  ros__parameters: {}\n"  # another robot's section
                 "/**/amcl:\n  ros__parameters: {}\n"  # another program's node
                 "/**:\n  ros__parameters: {}\n", encoding="utf-8")
    names = [s.name for s in NODES]
    assert misspelt_sections(f, names, "") == [
        "section '/**/safty' names no node of the stack (did you mean '/**/safety'?); its "
        "values are not used",
        "section 'navigtor' names no node of the stack (did you mean 'navigator'?); its "
        "values are not used"]
    shipped = Path(__file__).resolve().parents[2] / "config" / "passeur.yaml"
    assert misspelt_sections(shipped, names, "robot1") == []
    caplog.set_level("WARNING", logger="passeur.bringup")
    stack = Stack(StackOptions(profile=EXTERNAL, params_file=f, only=["safety"]),
                  context=ros_context)
    stack.close()
    assert f"{f}: section '/**/safty' names no node of the stack" in caplog.text


def test_wildcard_parameters_must_be_used_by_some_node() -> None:
    from passeur.ros.params import unknown_parameter_problems

    keys = {"sim": {"wrold": "/**", "seed": "/**/sim"},
            "safety": {"wrold": "/**", "rate_hz": "/**/safety"}}
    declared = {"sim": {"world", "seed", "use_sim_time"}, "safety": {"rate_hz", "use_sim_time"}}
    assert unknown_parameter_problems(keys, declared, whole_graph=True) == [
        "'/**' sets 'wrold', which no node has (did you mean 'world'?)"]
    # a subset of the nodes may leave out the one that uses a `/**` value
    assert unknown_parameter_problems(keys, declared, whole_graph=False) == []
    keys["safety"]["world"] = "/**"
    del keys["sim"]["wrold"], keys["safety"]["wrold"]
    assert unknown_parameter_problems(keys, declared, whole_graph=True) == []


@pytest.mark.parametrize("shared", ["/robot1/**", "/*", "/robot1/*", "**"])
def test_shared_sections_are_checked_like_the_wildcard(shared: str) -> None:
    """A multi-robot file's `/robot1/**` (or `/*`) is shared by every node: a value only the
    safety node has must not be refused for the telepresence node."""
    from passeur.ros.params import is_wildcard_key, unknown_parameter_problems

    assert is_wildcard_key(shared)
    assert not is_wildcard_key("/**/safety") and not is_wildcard_key("/robot1/safety")
    keys = {"safety": {"max_linear_mps": shared}, "telepresence": {"max_linear_mps": shared}}
    declared = {"safety": {"max_linear_mps"}, "telepresence": {"http_port"}}
    assert unknown_parameter_problems(keys, declared, whole_graph=False) == []
    assert unknown_parameter_problems(keys, declared, whole_graph=True) == []
    keys = {"safety": {"max_linaer_mps": shared}, "telepresence": {"max_linaer_mps": shared}}
    problems = unknown_parameter_problems(keys, declared, whole_graph=True)
    assert problems == [f"'{shared}' sets 'max_linaer_mps', which no node has (did you mean "
                        "'max_linear_mps'?)"]



@pytest.mark.parametrize("namespace", ["robot1", "/robot1", "/robot1/"])
def test_namespaced_sections_match_as_ros_matches_them(tmp_path: Path, namespace: str) -> None:
    """`--namespace robot1` (as the launch files and the CLI document it) puts the safety node
    at /robot1/safety: the node keys rcl matches for it must apply, others must not."""
    f = tmp_path / "p.yaml"
    f.write_text("/**:\n  ros__parameters:\n    a: 1\n"
                 "/robot1/**:\n  ros__parameters:\n    b: 2\n"
                 "/*/safety:\n  ros__parameters:\n    c: 3\n"
                 "/robot1/safety:\n  ros__parameters:\n    d: 4\n"
                 "robot1/safety:\n  ros__parameters:\n    e: 5\n"
                 "/robot2/safety:\n  ros__parameters:\n    x: 0\n"
                 "safety:\n  ros__parameters:\n    y: 0\n"
                 "/safety:\n  ros__parameters:\n    z: 0\n"
                 "/robot1/**/navigator:\n  ros__parameters:\n    w: 0\n")
    got = {p.name: p.value for p in load_parameter_file(f, "safety", namespace)}
    assert got == {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}
    # without a namespace the bare and the absolute name apply, `/*/safety` does not
    plain = {p.name: p.value for p in load_parameter_file(f, "safety", "")}
    assert plain == {"a": 1, "y": 0, "z": 0}


def test_a_node_section_overrides_wildcard_sections(tmp_path: Path) -> None:
    """Unlike rcl (matching sections in file order, the last wins), a node's own section wins
    over shared ones wherever each is in the file (see `params._precedence`)."""
    f = tmp_path / "p.yaml"
    f.write_text("/robot1/safety:\n  ros__parameters:\n    rate: 3.0\n"
                 "/robot1/**:\n  ros__parameters:\n    rate: 2.0\n"
                 "/**:\n  ros__parameters:\n    rate: 1.0\n")
    assert [p.value for p in load_parameter_file(f, "safety", "robot1")] == [3.0]


def test_wildcard_parameters_are_checked_only_when_every_node_runs() -> None:
    """`passeur robot` (profile external) runs every node but the simulator, and `--nodes`
    a subset: a `/**` value only a left-out node uses (the simulator's `seed`) is theirs."""
    from passeur.bringup import runs_every_node

    assert runs_every_node(specs_for(SIM))
    assert runs_every_node(specs_for(SIM, [s.name for s in NODES]))
    assert not runs_every_node(specs_for(EXTERNAL))
    assert not runs_every_node(specs_for(EXTERNAL, ["safety", "telepresence"]))
    assert not runs_every_node(specs_for(SIM, ["sim", "safety"]))


def test_the_shipped_file_starts_a_subset_of_the_external_profile(
        tmp_path: Path, ros_context: object) -> None:
    """`passeur robot --nodes safety,telepresence` with config/passeur.yaml: the sections of
    the nodes left out (sim, navigator, map_server, ...) and `/**` values only they use are
    ignored, not refused."""
    from passeur.bringup import Stack, StackOptions

    shipped = Path(__file__).resolve().parents[2] / "config" / "passeur.yaml"
    f = tmp_path / "passeur.yaml"
    # the shipped file plus a `/**` value only the (absent) simulator declares
    f.write_text(shipped.read_text(encoding="utf-8").replace(
        "    world: library", "    world: library\n    seed: 3", 1), encoding="utf-8")
    assert "seed: 3" in f.read_text(encoding="utf-8")
    for params_file in (shipped, f):
        stack = Stack(StackOptions(profile=EXTERNAL, params_file=params_file,
                                   only=["safety", "telepresence"],
                                   per_node={"telepresence": {"http_port": 0}}),
                      context=ros_context)
        try:
            assert sorted(n.get_name() for n in stack.nodes) == ["safety", "telepresence"]
        finally:
            stack.close()
