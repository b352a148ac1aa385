"""The `passeur` command.

    passeur sim [--world library] [--rtf max] ...   the simulated robot with its web pages
    passeur robot ...                               the stack next to a real robot's drivers
    passeur map build --world W                     rasterise a world into sim/maps/
    passeur patrol list|start|stop|status|history   staff patrols
    passeur read --book B --page N --audio F.wav    offline reading check
    passeur readers report|export|delete NAME       reading progress

Each area adds its own sub-commands through `<area>/commands.py: register(subparsers)`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import secrets
import sys
from collections.abc import Callable

from passeur.bringup import (
    EXTERNAL,
    SIM,
    StackOptions,
    add_stack_arguments,
    check_namespace,
    options_from_args,
    run_stack,
    specs_for,
)
from passeur.errors import PasseurError

#: Modules that contribute sub-commands (each has `register(subparsers)`).
COMMAND_MODULES = (
    "passeur.sim.commands",
    "passeur.navigation.commands",
    "passeur.telepresence.commands",
    "passeur.reading.commands",
)


def _rtf(text: str) -> float:
    if text == "max":
        return 0.0
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("expected a number > 0 or 'max'") from exc
    if value <= 0:
        raise argparse.ArgumentTypeError("expected a number > 0 or 'max'")
    return value


def _demo_staff_password(options: StackOptions) -> str | None:
    """For the local demo: when no staff password is configured, make one for this run.

    Returns the password to show the operator (on this terminal only, never logged), or None
    when config already has a hash or the telepresence node is not part of the run.
    """
    from passeur.bringup import default_params_file
    from passeur.ros.params import load_parameter_file

    if options.only is not None and "telepresence" not in options.only:
        return None
    params = load_parameter_file(options.params_file or default_params_file(), "telepresence",
                                 options.namespace)
    if any(p.name == "staff_password_hash" and p.value for p in params):
        return None
    from passeur.telepresence.access import hash_password

    password = secrets.token_urlsafe(9)
    options.per_node.setdefault("telepresence", {})["staff_password_hash"] = hash_password(password)
    return password


def _cmd_sim(args: argparse.Namespace) -> int:
    options = options_from_args(args, SIM)
    # Refuse wrong options before printing anything (the password below for one).
    check_namespace(options.namespace)
    specs_for(options.profile, options.only)
    if options.only is not None and "sim" not in options.only:
        # Every node of the sim profile runs on sim time: without the simulator in this
        # process their timers wait for a /clock from elsewhere (nothing happens until then).
        print("passeur: note: --nodes without 'sim': these nodes run on sim time and wait for "
              "/clock from a simulator started elsewhere (`passeur sim --nodes sim`); without "
              "one, use `passeur robot`", flush=True)
    password = _demo_staff_password(options)
    if password is not None:
        print(f"staff page password for this run: {password}  (choose your own with "
              "`passeur staff-password`, see README)", flush=True)
    sim = options.per_node.setdefault("sim", {})
    if args.rtf is not None:
        sim["real_time_factor"] = args.rtf
    if args.camera_rate is not None:
        sim["camera_rate_hz"] = args.camera_rate
    if args.seed is not None:
        sim["seed"] = args.seed
    return run_stack(options)


def _cmd_robot(args: argparse.Namespace) -> int:
    return run_stack(options_from_args(args, EXTERNAL))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="passeur", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_sim = sub.add_parser("sim", help="run the simulated robot (MuJoCo) with its web pages")
    add_stack_arguments(p_sim)
    # Options left out keep the parameter file's values (/**/sim: real_time_factor, ...).
    p_sim.add_argument("--rtf", type=_rtf, default=None,
                       help="real-time factor: 1 = real time, 'max' = as fast as possible "
                            "(default: the parameter file's real_time_factor, 1)")
    p_sim.add_argument("--camera-rate", type=float, default=None,
                       help="camera rate in Hz, 0 turns the camera off (default: the "
                            "parameter file's camera_rate_hz, 15)")
    p_sim.add_argument("--seed", type=int, default=None,
                       help="simulator random seed (default: the parameter file's seed, 0)")
    p_sim.set_defaults(func=_cmd_sim)

    p_robot = sub.add_parser(
        "robot", help="run the stack without the simulator: a real robot's drivers provide "
        "odom, scan, camera (not with gazebo.launch.py, which runs the stack itself)")
    add_stack_arguments(p_robot)
    p_robot.set_defaults(func=_cmd_robot)

    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # that area has no commands (yet)
        register: Callable[[argparse._SubParsersAction], None] = module.register  # type: ignore[type-arg]
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code: int = args.func(args)
        sys.stdout.flush()  # a closed pipe fails here, not in Python's flush at exit
        return code
    except PasseurError as exc:
        print(f"passeur: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The output's reader went away (`passeur readers export NAME | head`, a pager left
        # early): nothing to say, and no traceback. Python's own flush at exit must not
        # fail on the closed pipe again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
