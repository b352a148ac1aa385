"""Static tests of launch/sim.launch.py and launch/robot.launch.py.

`launch` and `launch_ros` cannot be installed here, so:
1. the files are parsed (ast) and their module-level imports checked: nothing missing;
2. they are imported for real with `launch` absent;
3. `generate_launch_description()` is called against a SMALL UNIT-TEST FAKE of the launch
   API (below, `_FakeLaunch`): it only records constructor arguments, so we can check every
   launch argument has a default and a description, every file named exists, the command
   lines parse with passeur_stack's own argument parser, and the node list is bringup's.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from passeur.bringup import EXTERNAL, NODES, SIM, add_stack_arguments, specs_for
from passeur.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_FILES = {"sim.launch.py": SIM, "robot.launch.py": EXTERNAL}


def _module_level_imports(tree: ast.Module) -> list[str]:
    names: list[str] = []
    for node in tree.body:  # module level only: imports inside functions are fine
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("filename", sorted(LAUNCH_FILES))
def test_launch_file_parses_and_imports_only_what_exists(filename: str) -> None:
    path = ROOT / "launch" / filename
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    funcs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert "generate_launch_description" in funcs
    for module in _module_level_imports(tree):
        top = module.split(".")[0]
        assert top not in ("launch", "launch_ros"), f"{filename} imports {module} at module level"
        assert importlib.util.find_spec(module) is not None, f"{filename}: {module} is missing"
    # the helper module too: launch/launch_ros only inside the function
    helper = ROOT / "src" / "passeur" / "launch_support.py"
    for module in _module_level_imports(ast.parse(helper.read_text(encoding="utf-8"))):
        assert module.split(".")[0] not in ("launch", "launch_ros")


def _load(filename: str) -> types.ModuleType:
    path = ROOT / "launch" / filename
    spec = importlib.util.spec_from_file_location(f"launchfile_{path.stem.replace('.', '_')}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("filename", sorted(LAUNCH_FILES))
def test_launch_file_imports_without_launch_installed(filename: str) -> None:
    assert "launch" not in sys.modules or isinstance(sys.modules["launch"], _FakeModule)
    module = _load(filename)
    assert callable(module.generate_launch_description)


# ---- a unit-test fake of the launch API (records arguments, runs nothing) -------------------

class _FakeModule(types.ModuleType):
    pass


class _Recorded:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs


class LaunchDescription(_Recorded):
    @property
    def entities(self) -> list[Any]:
        return list(self.args[0])


class DeclareLaunchArgument(_Recorded):
    @property
    def name(self) -> str:
        return str(self.args[0])


class LaunchConfiguration(_Recorded):
    @property
    def variable(self) -> str:
        return str(self.args[0])

    def perform(self, context: FakeContext) -> str:
        return context.arguments[self.variable]


class FakeContext:
    """What a condition's predicate reads: the launch arguments' values."""

    def __init__(self, arguments: dict[str, str]) -> None:
        self.arguments = arguments


class PathJoinSubstitution(_Recorded):
    pass


class FindPackageShare(_Recorded):
    pass


class UnlessCondition(_Recorded):
    pass


class Condition(_Recorded):
    def evaluate(self, context: FakeContext) -> bool:
        return bool(self.kwargs["predicate"](context))


class Node(_Recorded):
    pass


class _FakeLaunch:
    """Installs fake `launch` / `launch_ros` packages in sys.modules for one test."""

    MODULES = {
        "launch": {"LaunchDescription": LaunchDescription, "Condition": Condition},
        "launch.actions": {"DeclareLaunchArgument": DeclareLaunchArgument},
        "launch.conditions": {"UnlessCondition": UnlessCondition},
        "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration,
                                 "PathJoinSubstitution": PathJoinSubstitution},
        "launch_ros": {},
        "launch_ros.actions": {"Node": Node},
        "launch_ros.substitutions": {"FindPackageShare": FindPackageShare},
    }

    @classmethod
    def install(cls, monkeypatch: pytest.MonkeyPatch) -> None:
        for name, attrs in cls.MODULES.items():
            module = _FakeModule(name)
            module.__dict__.update(attrs)
            monkeypatch.setitem(sys.modules, name, module)


def _describe(filename: str, monkeypatch: pytest.MonkeyPatch) -> LaunchDescription:
    _FakeLaunch.install(monkeypatch)
    desc = _load(filename).generate_launch_description()
    assert isinstance(desc, LaunchDescription)
    return desc


def _resolve(value: Any, defaults: dict[str, Any]) -> str:
    """Evaluate a fake substitution with the launch arguments' defaults."""
    if isinstance(value, str):
        return value
    if isinstance(value, LaunchConfiguration):
        return _resolve(defaults[value.variable], defaults)
    if isinstance(value, FindPackageShare):
        assert value.args == ("passeur",)
        return str(ROOT)  # the checkout is the share directory in development
    if isinstance(value, PathJoinSubstitution):
        return str(Path(*[_resolve(part, defaults) for part in value.args[0]]))
    raise AssertionError(f"unexpected substitution {value!r}")


def _stack_parser() -> argparse.ArgumentParser:
    # the same options as passeur_stack (bringup.main)
    parser = argparse.ArgumentParser(prog="passeur_stack", exit_on_error=False)
    parser.add_argument("--profile", choices=[SIM, EXTERNAL], required=True)
    add_stack_arguments(parser)
    return parser


@pytest.mark.parametrize("filename, profile", sorted(LAUNCH_FILES.items()))
def test_launch_arguments_have_defaults_and_descriptions(
        filename: str, profile: str, monkeypatch: pytest.MonkeyPatch) -> None:
    desc = _describe(filename, monkeypatch)
    declared = [e for e in desc.entities if isinstance(e, DeclareLaunchArgument)]
    names = [d.name for d in declared]
    assert len(names) == len(set(names))
    assert {"world", "namespace", "params_file", "nodes", "split_processes"} <= set(names)
    for d in declared:
        assert "default_value" in d.kwargs and d.kwargs["default_value"] is not None, d.name
        assert len(str(d.kwargs.get("description", "")).strip()) > 10, d.name
    # every LaunchConfiguration used refers to a declared argument
    nodes = [e for e in desc.entities if isinstance(e, Node)]
    for node in nodes:
        for arg in node.kwargs["arguments"]:
            if isinstance(arg, LaunchConfiguration):
                assert arg.variable in names


@pytest.mark.parametrize("filename, profile", sorted(LAUNCH_FILES.items()))
def test_launch_graph_is_bringups_and_command_lines_parse(
        filename: str, profile: str, monkeypatch: pytest.MonkeyPatch) -> None:
    desc = _describe(filename, monkeypatch)
    defaults = {e.name: e.kwargs["default_value"] for e in desc.entities
                if isinstance(e, DeclareLaunchArgument)}
    nodes = [e for e in desc.entities if isinstance(e, Node)]
    setup_py = (ROOT / "setup.py").read_text(encoding="utf-8")
    single = [n for n in nodes if isinstance(n.kwargs.get("condition"), UnlessCondition)]
    split = [n for n in nodes if isinstance(n.kwargs.get("condition"), Condition)]
    assert len(single) == 1 and len(split) + 1 == len(nodes)
    parser = _stack_parser()
    per_process: list[str] = []
    for node in nodes:
        assert node.kwargs["package"] == "passeur"
        executable = node.kwargs["executable"]
        assert f"{executable} = passeur.bringup:main" in setup_py
        # never launch_ros' name/namespace: they would rename every node in the process
        assert "name" not in node.kwargs and "namespace" not in node.kwargs
        argv = [_resolve(a, defaults) for a in node.kwargs["arguments"]]
        args = parser.parse_args(argv)
        assert args.profile == profile
        assert args.params_file.is_file(), f"{filename} names a missing file {args.params_file}"
        assert args.params_file.resolve() == (ROOT / "config" / "passeur.yaml").resolve()
        if node in split:
            per_process.append(args.nodes)
        else:
            assert not args.nodes  # default: every node of the profile, in one process
    assert per_process == [s.name for s in specs_for(profile)]
    assert set(per_process) <= {s.name for s in NODES}
    if profile == EXTERNAL:
        assert "sim" not in per_process


@pytest.mark.parametrize("filename, profile", sorted(LAUNCH_FILES.items()))
def test_split_processes_start_only_the_nodes_asked_for(
        filename: str, profile: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`nodes:=safety,reading,telepresence split_processes:=true` (the README's Nav2 recipe,
    one process per node) must not start our navigator or map_server beside Nav2's."""
    desc = _describe(filename, monkeypatch)
    nodes = [e for e in desc.entities if isinstance(e, Node)]

    def started(**arguments: str) -> list[str]:
        context = FakeContext(arguments)
        out = []
        for node in nodes:
            condition = node.kwargs["condition"]
            if isinstance(condition, Condition) and condition.evaluate(context):
                out.append(str(node.kwargs["arguments"][-1]))
        return out

    every = [s.name for s in specs_for(profile)]
    assert started(split_processes="true", nodes="") == every
    assert started(split_processes="True", nodes="safety, reading,telepresence") == [
        "safety", "reading", "telepresence"]
    assert started(split_processes="false", nodes="safety") == []
    with pytest.raises(ConfigError, match="unknown node"):
        started(split_processes="true", nodes="safety,nav2")
    with pytest.raises(ConfigError, match="split_processes"):
        started(split_processes="yes please", nodes="")



def test_package_xml_declares_every_ros_package_the_code_imports() -> None:
    """rosdep installs exec_depends only: a ROS package imported directly (even one another
    dependency happens to pull in today) must be declared (REP-149)."""
    import xml.etree.ElementTree as ET

    depends = {e.text for e in ET.parse(ROOT / "package.xml").getroot().iter("exec_depend")}
    imported: set[str] = set()
    for path in [*(ROOT / "src" / "passeur").rglob("*.py"), *(ROOT / "launch").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    ros = {name for name in imported
           if name.endswith(("_msgs", "_srvs", "_interfaces"))
           or name in ("rclpy", "ament_index_python", "launch", "launch_ros", "xacro")}
    assert ros, "no ROS import found: the scan is broken"
    assert ros <= depends, f"package.xml lacks <exec_depend> for {sorted(ros - depends)}"
