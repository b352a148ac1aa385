"""`passeur map build`: rasterise worlds into map_server maps in sim/maps/."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from passeur.errors import ConfigError


def register(subparsers: Any) -> None:
    p_map = subparsers.add_parser("map", help="occupancy maps of the simulated worlds")
    sub = p_map.add_subparsers(dest="map_command", metavar="ACTION")
    p_build = sub.add_parser("build", help="rasterise a world (SDF) into sim/maps/<world>.yaml+.pgm")
    which = p_build.add_mutually_exclusive_group()
    which.add_argument("--world", default=None,
                       help="world name or .sdf path (default: library)")
    which.add_argument("--all", action="store_true", help="every world in sim/worlds/")
    p_build.add_argument("--output-dir", type=Path, default=None,
                         help="where to write the maps (default: sim/maps/ of the package)")
    p_build.add_argument("--resolution", type=float, default=0.05, help="cell size in metres")
    p_build.set_defaults(func=_cmd_build)
    p_map.set_defaults(func=lambda args: (p_map.print_help(), 2)[1])


def maps_dir() -> Path:
    from passeur.paths import share_path

    return share_path("sim", "maps")


def build_map(world: str | Path, output_dir: Path | None = None,
              resolution_m: float = 0.05) -> Path:
    """Rasterise one world; returns the YAML path written."""
    from passeur.navigation.map_io import save_map
    from passeur.sim.rasterize import rasterize
    from passeur.sim.sdf_world import load_world

    if not (math.isfinite(resolution_m) and resolution_m > 0):
        raise ConfigError(f"--resolution must be a number > 0, got {resolution_m} "
                          f"(cell size in metres; the maps are 0.05)")
    description = load_world(world)
    grid = rasterize(description, resolution_m)
    out = (output_dir or maps_dir()) / f"{description.path.stem}.yaml"
    save_map(grid, out)
    return out


def _cmd_build(args: argparse.Namespace) -> int:
    from passeur.sim.sdf_world import available_worlds

    worlds: list[str] = available_worlds() if args.all else [args.world or "library"]
    if not worlds:
        raise ConfigError("no worlds found in sim/worlds/")
    for world in worlds:
        path = build_map(world, args.output_dir, args.resolution)
        print(f"{world}: {path} and {path.with_suffix('.pgm').name}")
    return 0
