"""Real-time factor of the simulated stack, and the simulator's per-step costs.

    .venv/bin/python benchmarks/sim_rtf.py [--sim-seconds 60] [--world library]
    .venv/bin/python benchmarks/sim_rtf.py --sim-seconds 2      (a smoke run)

Runs the `sim` and `safety` nodes in one process, as `passeur sim --rtf max` does, for N seconds of sim time with the camera at 15 Hz and with it
off, and reports wall time and real-time factor. Then times the simulator's parts alone:
one 2 ms physics step, one 360-beam lidar sweep, one 640x480 render.
Reference figures (ENVIRONMENT.md, measured on this machine type with a simpler scene):
110,000 physics steps/s, lidar 0.09 ms, render 2.4 ms. JSON on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("MUJOCO_GL", "egl")

REFERENCE = {"physics_step_ms": 1000.0 / 110_000, "lidar_ms": 0.09, "render_ms": 2.4}


#: The graph measured: the simulator and the node that drives it (the issue's "sim + safety").
NODES = ["sim", "safety"]


def stack_rtf(world: str, sim_seconds: float, camera_hz: float,
              render_process: bool | None = None) -> dict[str, Any]:
    import rclpy
    from rclpy.context import Context

    from passeur.bringup import Stack, StackOptions

    context = Context()
    rclpy.init(context=context)
    try:
        sim_params: dict[str, Any] = {"real_time_factor": 0.0, "camera_rate_hz": camera_hz}
        if render_process is not None:  # None: the parameter file's value
            sim_params["render_process"] = render_process
        options = StackOptions(only=NODES, common={"world": world}, per_node={"sim": sim_params})
        stack = Stack(options, context=context)  # start() launches the sim loop at once
        # A viewer, as the telepresence page would be: the simulator renders only for
        # subscribers, so without one the "camera" run would not render at all.
        from rclpy.node import Node
        from sensor_msgs.msg import Image

        from passeur.ros import qos

        viewer = Node("benchmark_viewer", context=context)
        frames: list[int] = []
        viewer.create_subscription(Image, "camera/image_raw", lambda _m: frames.append(1),
                                   qos.SENSOR)
        stack.add_node(viewer)
        stack.start_spinning()
        sim = next(n for n in stack.nodes if n.get_name() == "sim")
        t0_wall, t0_sim = time.perf_counter(), sim.sim_time_s()
        deadline = t0_wall + max(600.0, sim_seconds * 10)
        while sim.sim_time_s() - t0_sim < sim_seconds:
            if time.perf_counter() > deadline:
                raise TimeoutError("the simulation did not reach the requested sim time")
            time.sleep(0.01)
        wall = time.perf_counter() - t0_wall
        simulated = sim.sim_time_s() - t0_sim
        stats = sim.loop.stats
        stack.close()
        viewer.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
    per_sim_s = 1.0 / max(stats.sim_s, 1e-9)
    return {
        "camera_hz": camera_hz,
        "sim_s": round(simulated, 3),
        "wall_s": round(wall, 3),
        "rtf": round(simulated / wall, 2),
        "loop_physics_ms_per_sim_s": round(stats.physics_s * 1000 * per_sim_s, 2),
        "loop_lidar_ms_per_sim_s": round(stats.scan_s * 1000 * per_sim_s, 2),
        "loop_render_ms_per_sim_s": round(stats.render_s * 1000 * per_sim_s, 2),
        "loop_render_wait_ms_per_sim_s": round(stats.render_wait_s * 1000 * per_sim_s, 2),
        "images": stats.images,
        "images_received": len(frames),
        "scans": stats.scans,
    }


def part_costs(world: str) -> dict[str, float]:
    from passeur.sim.simulator import Simulator

    sim = Simulator(world)
    sim.set_velocity(0.2, 0.1)
    sim.step(200)
    n = 5000
    t = time.perf_counter()
    sim.step(n)
    physics_ms = (time.perf_counter() - t) * 1000 / n
    n = 500
    t = time.perf_counter()
    for _ in range(n):
        sim.scan()
    lidar_ms = (time.perf_counter() - t) * 1000 / n
    sim.render()  # creates the GL context and uploads the scene
    n = 60
    t = time.perf_counter()
    for _ in range(n):
        sim.render()
    render_ms = (time.perf_counter() - t) * 1000 / n
    sim.close_renderer()
    return {"physics_step_ms": round(physics_ms, 4), "lidar_ms": round(lidar_ms, 4),
            "render_ms": round(render_ms, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sim-seconds", type=float, default=60.0,
                        help="sim time per run (s); 60 for the figures, 2 for a smoke run")
    parser.add_argument("--world", default="library", help="world name (library, chateau)")
    parser.add_argument("--render-process", choices=("true", "false"), default=None,
                        help="sim parameter render_process (default: config/passeur.yaml's)")
    args = parser.parse_args()
    render_process = None if args.render_process is None else args.render_process == "true"

    from passeur.rosenv import configure_environment

    configure_environment()
    if args.sim_seconds <= 0:
        parser.error("--sim-seconds must be > 0")
    print(f"graph: {' + '.join(NODES)}; world {args.world}; {args.sim_seconds:g} s of sim time; "
          f"{os.cpu_count()} cores")
    runs = []
    for camera_hz in (15.0, 0.0):
        run = stack_rtf(args.world, args.sim_seconds, camera_hz, render_process)
        runs.append(run)
        print(f"camera {camera_hz:>4g} Hz: {run['sim_s']:.1f} s sim in {run['wall_s']:.2f} s "
              f"wall -> {run['rtf']:.1f}x real time (per sim second: physics "
              f"{run['loop_physics_ms_per_sim_s']:.0f} ms, lidar "
              f"{run['loop_lidar_ms_per_sim_s']:.1f} ms, render "
              f"{run['loop_render_ms_per_sim_s']:.0f} ms in its own thread or process, loop waiting for a "
              f"frame slot {run['loop_render_wait_ms_per_sim_s']:.0f} ms)")
    parts = part_costs(args.world)
    for key, value in parts.items():
        ratio = value / REFERENCE[key]
        print(f"{key}: {value:.4f} ms (reference {REFERENCE[key]:.4f} ms, x{ratio:.2f})")
    goal = 10.0
    camera_rtf = runs[0]["rtf"]
    print(f"goal >= {goal:g}x real time with the camera: {'met' if camera_rtf >= goal else 'NOT met'}")
    result = {
        "benchmark": "sim_rtf",
        "graph": "+".join(NODES),
        "world": args.world,
        "render_process": args.render_process or "config",
        "cores": os.cpu_count(),
        "runs": runs,
        "parts": parts,
        "reference": REFERENCE,
        "ratio_to_reference": {k: round(parts[k] / REFERENCE[k], 2) for k in parts},
        "goal_rtf_with_camera": goal,
        "goal_met": camera_rtf >= goal,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
