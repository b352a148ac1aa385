"""Declaring typed, described parameters, and loading the stack's parameter file.

Every node declares its parameters through `declare()` so that each has a description and,
for numbers, a range; values out of range are refused by rclpy at set time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
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
    read_only: bool = True,
) -> Any:
    """Declare one parameter with a description (and range) and return its value.

    Read-only unless `read_only=False`: most nodes read their parameters once, at start-up,
    so a run-time change (`ros2 param set`) would be reported as successful and do nothing.
    rclpy refuses a change to a read-only parameter ("Trying to set a read-only
    parameter"); a node that applies changes (an on-set-parameters callback) passes False.
    """
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
    try:
        return node.declare_parameter(name, default, descriptor).value
    except InvalidParameterTypeException as exc:
        given = _override_value(node, name)
        raise ParameterValueError(
            name, f"is {_show(given)} ({_kind(given)}) but must be {_kind(default)}"
                  f"{_type_hint(given, default)}") from exc
    except InvalidParameterValueException as exc:
        given = _override_value(node, name)
        raise ParameterValueError(
            name, f"is {_show(given)}, out of range: {_range_text(min_value, max_value, default)}"
        ) from exc


def given(node: Node, name: str) -> bool:
    """Whether `name` has a value from outside the node (a parameter file, the command line,
    `parameter_overrides`), not just its declared default."""
    return _override_value(node, name) is not _MISSING


class ParameterValueError(ConfigError):
    """A value rclpy refused when a node declared the parameter: wrong type, out of range.

    `bringup.create_node` adds the node and the parameter file to the message.
    """

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        super().__init__(f"parameter '{name}' {problem}")


_MISSING = object()


def _override_value(node: Node, name: str) -> Any:
    # rclpy keeps the overrides (parameter file, command line) but offers no public accessor.
    override = getattr(node, "_parameter_overrides", {}).get(name)
    return _MISSING if override is None else override.value


def _show(value: Any) -> str:
    return "this value" if value is _MISSING else repr(value)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number with a decimal point"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        kinds = {_kind(v) for v in value}
        if len(kinds) == 1:
            return "a list of " + kinds.pop().removeprefix("a ").replace("number", "numbers")
        return "a list"
    return "another type" if value is not _MISSING else "of another type"


def _type_hint(given: Any, default: Any) -> str:
    """How to write what was meant, for the mistakes YAML makes easy."""
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if isinstance(default, float) and is_int(given):
        return f" (write {float(given)!r})"
    if isinstance(default, list | tuple) and default and isinstance(default[0], float) \
            and isinstance(given, list | tuple) and all(is_int(v) for v in given):
        return f" (write {[float(v) for v in given]!r})"
    if isinstance(default, str) and not isinstance(given, str) and given is not _MISSING:
        return " (quote it)"
    return ""


def _range_text(lo: float | None, hi: float | None, default: Any) -> str:
    def show(v: float) -> str:
        return repr(float(v)) if isinstance(default, float) else repr(int(v))

    if lo is not None and hi is not None:
        return f"must be between {show(lo)} and {show(hi)}"
    if lo is not None:
        return f"must be at least {show(lo)}"
    if hi is not None:
        return f"must be at most {show(hi)}"
    return "refused"


def _key_pattern(key: str) -> re.Pattern[str]:
    """rcl's rule for a parameter file's node key: a leading `/` is implied; `**` stands for
    any number of namespace levels, `*` for exactly one name."""
    text = key if key.startswith("/") else f"/{key}"
    out = ""
    for part in re.split(r"(/\*\*|/\*)", text):
        if part == "/**":
            out += r"(?:/[^/]+)*"
        elif part == "/*":
            out += r"/[^/]+"
        else:
            out += re.escape(part)
    return re.compile(out)


def _matches(key: str, node_name: str, namespace: str) -> bool:
    """Whether a parameter file's node key (`/**`, `/**/name`, `/ns/*/name`, `name`,
    `ns/name`, `/ns/name`) names the node `name` in `namespace` (`robot1`, `/robot1`)."""
    ns = namespace.strip("/")
    full = f"/{ns}/{node_name}" if ns else f"/{node_name}"
    return _key_pattern(key).fullmatch(full) is not None


def _precedence(key: str) -> int:
    """`/**` first, then other wildcard keys, then exact node names: the most specific wins.

    Deliberately not rcl's rule, under which matching sections apply in file order (the last
    one wins): here a node's own section overrides a shared one wherever each is in the file.
    """
    if key in ("/**", "**"):
        return 0
    return 1 if "*" in key else 2


def load_parameter_file(path: Path, node_name: str, namespace: str = "") -> list[Parameter]:
    """Parameters for one node from a ROS 2 parameter YAML file (`/**` entries first).

    Raises ConfigError naming the file and the problem for anything malformed.
    """
    return load_parameter_file_with_keys(path, node_name, namespace)[0]


def load_parameter_file_with_keys(path: Path, node_name: str, namespace: str = ""
                                  ) -> tuple[list[Parameter], dict[str, str]]:
    """`load_parameter_file`'s parameters, and {parameter name: the file's section key it
    comes from} (the section that wins), from one reading of the file."""
    entries = _file_entries(path, node_name, namespace)
    return ([Parameter(name, value=value) for name, (value, _key) in entries.items()],
            {name: key for name, (_value, key) in entries.items()})


def is_wildcard_key(key: str) -> bool:
    """A section shared by nodes of any name: its last segment is `**` or `*` (`/**`,
    `/robot1/**`, `/*`); `/**/safety` is the safety node's own section."""
    return key.rstrip("/").rsplit("/", 1)[-1] in ("*", "**")


def unknown_parameter_problems(file_keys: dict[str, dict[str, str]],
                               declared: dict[str, set[str]],
                               whole_graph: bool) -> list[str]:
    """What a parameter file sets that no node declares (rclpy ignores it without a word).

    `file_keys`: per node, the keys of `load_parameter_file_with_keys`; `declared`: per node, its parameter names.
    A name in a node's own section must be one that node declares; a `/**` name, one that at
    least one node declares (checked only when `whole_graph`, every node of the graph
    running: a subset, or the `external` profile without the simulator, may leave out the
    node that uses it). Sections for nodes not running are never read, so never checked.
    """
    import difflib

    problems: list[str] = []
    wildcard: dict[str, str] = {}
    for node, keys in file_keys.items():
        known = declared.get(node, set())
        for name, key in keys.items():
            if is_wildcard_key(key):
                wildcard[name] = key
            elif name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                problems.append(f"'{key}' sets '{name}', which node '{node}' does not have"
                                f"{hint}")
    if whole_graph:
        everything = set().union(*declared.values()) if declared else set()
        for name, key in wildcard.items():
            if name not in everything:
                close = difflib.get_close_matches(name, sorted(everything), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                problems.append(f"'{key}' sets '{name}', which no node has{hint}")
    return problems


def misspelt_sections(path: Path, node_names: list[str], namespace: str) -> list[str]:
    """Sections of the parameter file that name no node of `node_names` but look like a
    misspelt one (`/**/safty`): rclpy would apply none of their values.

    A section for another node of a shared file (amcl, ...) or for another robot's
    namespace is not listed: only a name close to one of ours, that none of ours has.
    """
    import difflib

    data = _read_parameter_file(path)
    if not isinstance(data, dict):
        return []
    hints = []
    for key in map(str, data):
        if is_wildcard_key(key) or any(_matches(key, n, namespace) for n in node_names):
            continue
        name = key.rstrip("/").rsplit("/", 1)[-1]
        if name in node_names:
            continue  # another namespace's section (a multi-robot file)
        close = difflib.get_close_matches(name, node_names, n=1, cutoff=0.75)
        if close:
            hints.append(f"section '{key}' names no node of the stack (did you mean "
                         f"'{key[:len(key) - len(name)]}{close[0]}'?); its values are not used")
    return hints


def _read_parameter_file(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError("file not found; pass an existing parameter file", path) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start}); save it as "
                          "UTF-8", path) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the parameter file ({exc.strerror})", path) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML ({exc}); fix the syntax", path) from exc


def _file_entries(path: Path, node_name: str, namespace: str) -> dict[str, tuple[Any, str]]:
    data = _read_parameter_file(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of node names to `ros__parameters`", path)
    # Wildcards first so that a node's own section overrides them.
    keys = sorted(data, key=lambda k: _precedence(str(k)))
    out: dict[str, tuple[Any, str]] = {}
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
    return out


def _flatten(tree: dict[str, Any], prefix: str, out: dict[str, tuple[Any, str]], path: Path,
             key: str) -> None:
    for name, value in tree.items():
        full = f"{prefix}{name}"
        if isinstance(value, dict):
            _flatten(value, f"{full}.", out, path, key)
        elif value is None:
            raise ConfigError(f"parameter '{key}.{full}' has no value", path)
        elif isinstance(value, list) and len({type(v) for v in value}) > 1:
            raise ConfigError(f"parameter '{key}.{full}' mixes types in a list", path)
        else:
            out[full] = (value, key)
