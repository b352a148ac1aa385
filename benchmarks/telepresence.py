"""Telepresence benchmark: headless Chromium on loopback against the in-process stack.

    python benchmarks/telepresence.py [--viewers 1,3,5] [--seconds 10] [--codec VP8]

- Glass-to-glass video latency: the telepresence node stamps a frame counter into each camera
  image (a 20-bit code in the top-left corner) and notes the wall time the image reached it
  (in-process from the simulator's render: ~2-3 ms of DDS transport are not counted). Each
  browser decodes the code from the displayed frame in requestVideoFrameCallback and takes
  `expectedDisplayTime`; latency = display time - arrival time. p50/p95 per viewer count.
- Frames per second displayed by each viewer, and server CPU (the whole Python process: sim,
  ROS, web server, encoders) over the window; CPU per viewer = (CPU with N - CPU with 0) / N.
- Data channel: the pilot page sends drive commands with distinct speeds; latency from the
  browser's send time to the publish of the matching cmd_vel/teleop message, p50/p99, split
  at the datagram's arrival in the kernel (`wire_stamps.py`, a capture on `lo` in a process
  of its own): browser -> kernel arrival (the browser's own threads and processes, and
  loopback; deployed, the visitor's device and the network) and kernel arrival -> publish (the
  robot: waking the server's loop, DTLS, SCTP, validation, publish).

By default the simulator runs in a process of its own, as a camera driver does on a robot
(`--source sim-process`; the frame's DDS transfer between the two processes, ~1-3 ms, is before
the arrival time and not counted). `--source sim` runs it in the server's process, as the
all-in-one `passeur sim` demo does: its physics thread then competes with the web server's
loop for the GIL, which lengthens the command tail. The web server's loop thread runs in
SCHED_RR within its CPU budget as the node's default (`web_thread_rt_priority` 10; needs
CAP_SYS_NICE: root in the benchmark's `unshare -n`); `--rt-priority 0` measures without.

The browsers share the robot's 2 cores here; deployed, they run on the visitors' devices.
`--browser-nice 10` lowers their CPU priority below the server's (they still use every cycle
the server leaves) to approach that; the default (0) keeps them level with it.

Goals (issue 4): p95 display latency <= 80 ms at 640x480; command p99 <= 5 ms; 5 viewers at
>= 25 fps on 2 cores. Peer: published telepresence systems 130-200 ms glass to glass.
JSON on the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

PEER_P95_MS = 130.0  # lower end of published telepresence glass-to-glass latencies

STAMP_JS = """
() => {
  const v = document.getElementById('video');
  const c = document.createElement('canvas');
  c.width = 160; c.height = 32;
  const g = c.getContext('2d', {willReadFrequently: true});
  window.__lat = [];
  window.__frames = 0;
  const cb = (now, meta) => {
    g.drawImage(v, 0, 0, 160, 32, 0, 0, 160, 32);
    const d = g.getImageData(0, 0, 160, 32).data;
    let value = 0;
    for (let bit = 0; bit < 20; bit++) {
      const row = Math.floor(bit / 10), col = bit % 10;
      const x = col * 16 + 8, y = row * 16 + 8;
      const i = (y * 160 + x) * 4;
      if ((d[i] + d[i + 1] + d[i + 2]) / 3 > 127) value |= (1 << bit);
    }
    window.__frames++;
    window.__lat.push([value, performance.timeOrigin + meta.expectedDisplayTime]);
    v.requestVideoFrameCallback(cb);
  };
  v.requestVideoFrameCallback(cb);
}
"""


def start_sim_process(camera_rate_hz: float) -> subprocess.Popen[bytes]:
    """`passeur_stack --nodes sim` at real time with the camera at `camera_rate_hz`, in a
    process of its own, given 3 s to start (the viewers then wait for its video)."""
    import yaml

    params = yaml.safe_load((ROOT / "config" / "passeur.yaml").read_text())
    sim = params["/**/sim"]["ros__parameters"]
    sim["real_time_factor"], sim["camera_rate_hz"] = 1.0, camera_rate_hz
    handle = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    with handle:
        yaml.safe_dump(params, handle)
    atexit.register(os.unlink, handle.name)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"),
                                                         os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from passeur.bringup import main;"
                             " sys.exit(main())", "--nodes", "sim", "--params-file", handle.name],
                            env=env, stdout=subprocess.DEVNULL)
    time.sleep(3.0)
    if proc.poll() is not None:
        raise RuntimeError(f"the simulator process exited with code {proc.returncode}")
    return proc


def _process_table() -> dict[int, tuple[str, list[str]]]:
    """pid -> (command name, the fields of /proc/pid/stat after it)."""
    table: dict[int, tuple[str, list[str]]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        table[int(entry)] = (stat[stat.index("(") + 1:stat.rindex(")")],
                             stat[stat.rindex(")") + 2:].split())
    return table


def browser_pids(table: dict[int, tuple[str, list[str]]] | None = None) -> list[int]:
    """This process's descendants that are Playwright's driver or the browsers it started (not
    the simulator's render process, also a child)."""
    table = _process_table() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (_name, fields) in table.items():
        children.setdefault(int(fields[1]), []).append(pid)
    out, todo = [], [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            if table[child][0].startswith(("node", "chrom", "playwright")):
                out.append(child)
                todo.append(child)
    return out


def descendants_cpu_s() -> float:
    """CPU seconds used so far by this process's descendants (the browsers, via Playwright's
    driver): they share the 2 cores with the server."""
    table = _process_table()
    tick = os.sysconf("SC_CLK_TCK")
    return sum((int(table[pid][1][11]) + int(table[pid][1][12])) / tick
               for pid in browser_pids(table))


def renice_browsers(niceness: int) -> int:
    """Lower the browsers' CPU priority (their later renderers inherit it). A visitor's browser
    runs on the visitor's device, not on the robot; on loopback it shares the robot's cores, and
    this keeps it from taking the CPU when the server has work. Returns the processes reniced."""
    done = 0
    for pid in browser_pids():
        try:
            os.setpriority(os.PRIO_PROCESS, pid, niceness)
            done += 1
        except OSError:
            continue
    return done


def start_wire_stamps(path: Path) -> subprocess.Popen[bytes] | None:
    """wire_stamps.py in a process of its own, once it listens (None: it could not, e.g.
    without CAP_NET_RAW; the split by kernel arrival is then left out)."""
    process = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "wire_stamps.py"),
                                str(path)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and process.poll() is None:
        if path.exists() and path.read_text().startswith("ready"):
            return process
        time.sleep(0.05)
    process.kill()
    print("wire_stamps.py could not capture on lo (needs CAP_NET_RAW): no kernel-arrival split")
    return None


def wire_arrivals(path: Path) -> dict[tuple[int, bytes], float]:
    """Kernel arrival time of each DTLS record captured, by destination port and record
    (epoch and sequence number)."""
    out: dict[tuple[int, bytes], float] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines()[1:]:
        try:
            t, port, key = json.loads(line)
            out.setdefault((int(port), bytes.fromhex(key)), t)
        except ValueError:
            continue  # the last line, cut by the stop
    return out


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", default="1,3,5",
                        help="viewer counts to measure, e.g. 1,3,5; empty: commands only")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--codec", default="VP8", choices=["VP8", "H264"])
    parser.add_argument("--camera-rate", type=float, default=30.0)
    parser.add_argument("--commands", type=int, default=300)
    parser.add_argument("--source", choices=["sim", "sim-process", "synthetic"],
                        default="sim-process",
                        help="sim-process (default): the simulator in a process of its own, as "
                        "a camera driver runs beside `passeur robot` (or `split_processes:=true`"
                        "); sim: the simulator's camera in the server's process, as the all-in-"
                        "one `passeur sim` demo runs (its physics thread then competes with the "
                        "web server for the GIL); synthetic: a 30 Hz pattern pushed by a probe")
    parser.add_argument("--render-process", choices=["true", "false"], default=None,
                        help="--source sim: the sim parameter render_process (camera frames in "
                        "a child process or a thread; default: config/passeur.yaml's)")
    parser.add_argument("--rt-priority", type=int, default=None,
                        help="web_thread_rt_priority for the telepresence node (default: the "
                        "node's, 10; 0 = off)")
    parser.add_argument("--browser-nice", type=int, default=0,
                        help="niceness of the browsers (0: as the server; 10: below it, as if "
                        "they ran on the visitors' devices rather than on the robot)")
    parser.add_argument("--raw", default="", help="write the raw command samples (JSON) here")
    args = parser.parse_args()
    counts = [int(v) for v in args.viewers.split(",") if v.strip()]

    from passeur.rosenv import configure_environment

    configure_environment()
    import rclpy
    from geometry_msgs.msg import Twist
    from playwright.sync_api import sync_playwright
    from rclpy.context import Context

    from passeur.ros import qos
    from passeur.telepresence.access import hash_password
    from support.ros_harness import StackHarness
    from support.telepresence_browser import FakeBase, launch, sim_available

    context = Context()
    rclpy.init(context=context)
    tp = {"http_port": 0, "ice_host_addresses": "127.0.0.1", "frame_stamp": True,
          "video_codec": args.codec, "audio_mic": "silence", "audio_speaker": "none",
          "staff_password_hash": hash_password("bench-password", n=2**10), "max_viewers": 16,
          "max_spectators": 14}
    if args.rt_priority is not None:
        tp["web_thread_rt_priority"] = args.rt_priority
    fake = None
    sim_process: subprocess.Popen[bytes] | None = None
    if args.source == "sim-process" and sim_available():
        sim_process = start_sim_process(args.camera_rate)
        h = StackHarness(context, nodes=["telepresence"], common={"use_sim_time": False},
                         per_node={"telepresence": tp})
        source = f"simulator camera at {args.camera_rate:g} Hz, in another process"
    elif args.source == "sim" and sim_available():
        sim_params: dict[str, Any] = {"real_time_factor": 1.0,
                                      "camera_rate_hz": args.camera_rate}
        if args.render_process is not None:
            sim_params["render_process"] = args.render_process == "true"
        h = StackHarness(context, nodes=["sim", "telepresence"],
                         per_node={"sim": sim_params, "telepresence": tp})
        rendering = "a child process" if h.node("sim").loop.render_process else "a thread"
        source = f"simulator camera at {args.camera_rate:g} Hz, rendered in {rendering}"
    else:
        h = StackHarness(context, nodes=["telepresence"], common={"use_sim_time": False},
                         per_node={"telepresence": tp})
        fake = FakeBase(h, rate_hz=args.camera_rate)
        source = f"synthetic camera at {args.camera_rate:g} Hz"
    node = h.node("telepresence")
    server = node.server
    base = server.base_url
    received: dict[float, float] = {}
    lock = threading.Lock()

    def on_teleop(msg: Twist) -> None:
        t = time.time()
        with lock:
            received.setdefault(round(msg.angular.z, 4), t)

    h.probe.create_subscription(Twist, "cmd_vel/teleop", on_teleop, qos.COMMAND)

    # Where the command latency goes: browser send -> the server's message handler (browser,
    # SCTP/DTLS, kernel, waking the loop) and handler -> publish (the server's own work).
    handled: dict[float, float] = {}
    on_message = server._on_message

    # ... and, inside the server, datagram seen by the loop -> handler (DTLS, SCTP, queues).
    import aioice.ice

    # Each DTLS record is known by its epoch and sequence number (header bytes 3-10, sent in
    # clear): the same key in the capture (wire_stamps.py), when the loop read the datagram,
    # and when the DTLS task took it off the queue to decrypt it (the one its handler runs in).
    # Sequence numbers count per direction and per connection: the key is the server's ICE
    # port (the datagram's destination) with them.
    read_at: dict[tuple[int, bytes], float] = {}
    current: list[tuple[int, bytes]] = [(0, b"")]
    in_loop_ms: list[float] = []
    datagram_at: dict[float, tuple[float, tuple[int, bytes]]] = {}
    data_received = aioice.ice.Connection.data_received
    recv = aioice.ice.Connection.recv

    def local_port(connection: Any) -> int:
        nominated = getattr(connection, "_nominated", {}).get(1)
        return int(nominated.local_candidate.port) if nominated is not None else 0

    def timed_data_received(self: Any, data: bytes, component: int) -> None:
        if data[:1] == b"\x17":  # DTLS application data (SCTP: the data channel), not RTP
            read_at[(local_port(self), data[3:11])] = time.time()
        data_received(self, data, component)

    async def keyed_recv(self: Any) -> bytes:
        data: bytes = await recv(self)
        if data[:1] == b"\x17":
            current[0] = (local_port(self), data[3:11])
        return data

    aioice.ice.Connection.data_received = timed_data_received  # type: ignore[method-assign]
    aioice.ice.Connection.recv = keyed_recv  # type: ignore[method-assign]

    def timed_on_message(peer: Any, raw: Any) -> None:
        t = time.time()
        try:
            w = round(float(json.loads(raw).get("angular", "nan")), 4)
        except (ValueError, TypeError, AttributeError):
            w = float("nan")
        key = current[0]
        if key in read_at:
            in_loop_ms.append(1000.0 * (t - read_at[key]))
            datagram_at.setdefault(w, (read_at[key], key))
        handled.setdefault(w, t)
        on_message(peer, raw)

    server._on_message = timed_on_message

    # Event-loop lag: how late a 2 ms sleep on the server's loop wakes up (a busy loop or a
    # thread holding the GIL delays every message by as much).
    lag_ms: list[float] = []

    async def probe_loop_lag(stop: threading.Event) -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(0.002)
            lag_ms.append(1000.0 * (time.perf_counter() - t0) - 2.0)

    async def issue(role: str) -> str:
        return node.access.issue_code(role, 3600).code

    async def loop_policy() -> str:
        policy = os.sched_getscheduler(threading.get_native_id()) & ~os.SCHED_RESET_ON_FORK
        return "SCHED_RR" if policy == os.SCHED_RR else "normal"

    results: dict[str, Any] = {"codec": args.codec, "source": source, "resolution": "640x480",
                               "web_thread_rt_priority": node.options.thread_rt_priority,
                               "web_loop_thread_policy": server.call(loop_policy()),
                               "browser_nice": args.browser_nice, "viewers": {}}
    print(f"telepresence benchmark: {source}, codec {args.codec}, {os.cpu_count()} cores")
    with sync_playwright() as pw:
        browser = launch(pw)
        if args.browser_nice:
            print(f"browsers at niceness {args.browser_nice}: "
                  f"{renice_browsers(args.browser_nice)} processes")
        pages: list[Any] = []

        def add_viewer() -> None:
            page = browser.new_context().new_page()
            page.goto(base + "/spectator/")
            page.fill("#code-input", server.call(issue("spectator")))
            page.click("#code-submit")
            page.wait_for_function("document.getElementById('video').videoWidth > 0",
                                   timeout=60_000)
            page.evaluate(STAMP_JS)
            pages.append(page)

        # Baseline CPU with no viewer.
        cpu0, wall0 = time.process_time(), time.monotonic()
        time.sleep(args.seconds / 2)
        base_cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
        results["server_cpu_pct_idle"] = round(100 * base_cpu, 1)
        print(f"server process CPU without viewers: {100 * base_cpu:.1f} % of one core")
        for n in counts:
            while len(pages) < n:
                add_viewer()
            time.sleep(args.warmup)
            for page in pages:
                page.evaluate("() => { window.__lat = []; window.__frames = 0; }")
            encoder = server._encoder
            if encoder is not None:
                encoder.server_latency_ms.clear()
            kf0 = (encoder.frames_encoded, encoder.keyframes) if encoder else (0, 0)
            load0 = os.getloadavg()[0]
            camera0, browsers0 = node.camera.frames_in, descendants_cpu_s()
            cpu0, wall0 = time.process_time(), time.monotonic()
            time.sleep(args.seconds)
            wall = time.monotonic() - wall0
            camera_fps = (node.camera.frames_in - camera0) / wall
            browsers_cpu = (descendants_cpu_s() - browsers0) / wall
            server_part = list(encoder.server_latency_ms) if encoder is not None else []
            frames_kf = (encoder.frames_encoded, encoder.keyframes) if encoder else (0, 0)
            cpu = (time.process_time() - cpu0) / wall
            latencies, fps = [], []
            stamps = dict(node.camera.stamp_times)
            for page in pages:
                lat = page.evaluate("window.__lat")
                frames = page.evaluate("window.__frames")
                fps.append(frames / wall)
                for counter, shown_ms in lat:
                    arrival = stamps.get(int(counter))
                    if arrival is not None:
                        value = shown_ms - arrival * 1000.0
                        if -5 < value < 5000:
                            latencies.append(value)
            entry = {
                "latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
                "latency_ms_p95": round(percentile(latencies, 95), 1) if latencies else None,
                "latency_samples": len(latencies),
                "fps_min": round(min(fps), 1), "fps_mean": round(statistics.mean(fps), 1),
                "server_cpu_pct": round(100 * cpu, 1),
                "server_cpu_pct_per_viewer": round(100 * (cpu - base_cpu) / n, 1),
                # arrival -> encoded (conversion, queueing, encoding): the server's share
                "server_part_ms_p50": round(statistics.median(server_part), 1)
                if server_part else None,
                "server_part_ms_p95": round(percentile(server_part, 95), 1)
                if server_part else None,
                "load_average_1min": round((load0 + os.getloadavg()[0]) / 2, 2),
                # frames reaching the server, and CPU of the browsers (same machine)
                "camera_fps": round(camera_fps, 1),
                "browsers_cpu_pct": round(100 * browsers_cpu, 1),
                "encoded_frames": frames_kf[0] - kf0[0],
                "keyframes": frames_kf[1] - kf0[1],
            }
            results["viewers"][str(n)] = entry
            print(f"{n} viewer(s): latency p50 {entry['latency_ms_p50']} ms, p95 "
                  f"{entry['latency_ms_p95']} ms ({len(latencies)} frames), fps min "
                  f"{entry['fps_min']} mean {entry['fps_mean']}, server CPU {entry['server_cpu_pct']} %"
                  f" ({entry['server_cpu_pct_per_viewer']} % per viewer); server part p50 "
                  f"{entry['server_part_ms_p50']} p95 {entry['server_part_ms_p95']} ms; camera "
                  f"{entry['camera_fps']} fps, encoded {entry['encoded_frames'] / wall:.1f} fps;"
                  f" browsers {entry['browsers_cpu_pct']} % CPU; load "
                  f"{entry['load_average_1min']}")
        for page in pages:
            page.context.close()

        # Command latency: browser send -> cmd_vel/teleop on the probe.
        pilot = browser.new_context().new_page()
        pilot.goto(base + "/pilot/")
        pilot.fill("#code-input", server.call(issue("pilot")))
        pilot.click("#code-submit")
        pilot.wait_for_function("window.passeurPilot && window.passeurPilot.state.conn && "
                                "window.passeurPilot.state.conn.channel.readyState === 'open'",
                                timeout=60_000)
        wire_file = Path(tempfile.mkdtemp(prefix="passeur-wire-")) / "stamps.jsonl"
        sniffer = start_wire_stamps(wire_file)
        stop_lag = threading.Event()
        in_loop_ms.clear()
        lag_future = asyncio.run_coroutine_threadsafe(probe_loop_lag(stop_lag), server.loop)
        # The page sends on its own while this process sleeps: Playwright's client runs in
        # this (the measured) process, and awaiting the page would have it parse the
        # browser's protocol traffic, holding the GIL, throughout the window.
        pilot.evaluate("""(n) => {
            const ch = window.passeurPilot.state.conn.channel;
            window.__sent = [];
            window.__sentDone = false;
            (async () => {
              for (let k = 0; k < n; k++) {
                const w = Math.round((0.05 + 0.0007 * k) * 10000) / 10000;
                window.__sent.push([w, performance.timeOrigin + performance.now()]);
                ch.send(JSON.stringify({type: 'drive', linear: 0, angular: w}));
                await new Promise(r => setTimeout(r, 20));
              }
              ch.send(JSON.stringify({type: 'stop'}));
              window.__sentDone = true;
            })();
        }""", args.commands)
        time.sleep(0.02 * args.commands + 1.0)
        pilot.wait_for_function("window.__sentDone", timeout=60_000)
        sent = pilot.evaluate("window.__sent")
        time.sleep(0.5)
        if sniffer is not None:
            sniffer.terminate()
            sniffer.wait(5)
        stop_lag.set()
        lag_future.result(5.0)
        published: dict[float, float] = {}
        for t_pub, _lin, ang in list(node.publish_log):
            published.setdefault(round(ang, 4), t_pub)
        cmd_lat = [published[w] * 1000.0 - t_ms for w, t_ms in sent if w in published]
        with lock:
            probe_lat = [received[w] * 1000.0 - t_ms for w, t_ms in sent if w in received]
        to_server = [handled[w] * 1000.0 - t_ms for w, t_ms in sent if w in handled]
        in_server = [(published[w] - handled[w]) * 1000.0 for w, _t in sent
                     if w in handled and w in published]
        # The server's whole share once its loop has read the datagram (DTLS, SCTP, handler,
        # publish); the time a busy loop takes to read it is in loop_lag_ms.
        datagram_to_publish = [(published[w] - datagram_at[w][0]) * 1000.0 for w, _t in sent
                               if w in datagram_at and w in published]
        # From the kernel's arrival of the datagram (wire_stamps.py) on: what the robot
        # spends (waking the loop, DTLS, SCTP, handler, publish), and before it what the
        # browser and the loopback spend (deployed: the visitor's device and the network).
        wire = wire_arrivals(wire_file)
        wire_to_publish, browser_to_wire = [], []
        for w, t_ms in sent:
            if w not in datagram_at or w not in published:
                continue
            arrived = wire.get(datagram_at[w][1])
            if arrived is not None:
                wire_to_publish.append((published[w] - arrived) * 1000.0)
                browser_to_wire.append(arrived * 1000.0 - t_ms)
        shutil.rmtree(wire_file.parent, ignore_errors=True)
        pilot.context.close()
        browser.close()
    results["command_latency_ms_p50"] = round(statistics.median(cmd_lat), 2) if cmd_lat else None
    results["command_latency_ms_p99"] = round(percentile(cmd_lat, 99), 2) if cmd_lat else None
    results["command_samples"] = len(cmd_lat)
    if args.raw:
        Path(args.raw).write_text(json.dumps({"sent": sent, "handled": list(handled.items()),
                                              "published": list(published.items()),
                                              "loop_lag_ms": lag_ms}))
    for key, values in (("command_to_server_ms", to_server), ("command_in_server_ms", in_server),
                        ("command_datagram_to_handler_ms", in_loop_ms),
                        ("command_datagram_to_publish_ms", datagram_to_publish),
                        ("command_wire_to_publish_ms", wire_to_publish),
                        ("command_browser_to_wire_ms", browser_to_wire),
                        ("loop_lag_ms", lag_ms)):
        results[f"{key}_p50"] = round(statistics.median(values), 2) if values else None
        results[f"{key}_p99"] = round(percentile(values, 99), 2) if values else None
    # Same, until a subscriber in the process has the message (adds executor scheduling).
    results["command_to_subscriber_ms_p50"] = round(statistics.median(probe_lat), 2) \
        if probe_lat else None
    results["command_to_subscriber_ms_p99"] = round(percentile(probe_lat, 99), 2) \
        if probe_lat else None
    print(f"data channel -> cmd_vel/teleop: p50 {results['command_latency_ms_p50']} ms, "
          f"p99 {results['command_latency_ms_p99']} ms ({len(cmd_lat)}/{args.commands}); "
          f"to the server p50 {results['command_to_server_ms_p50']} p99 "
          f"{results['command_to_server_ms_p99']}, in the server p50 "
          f"{results['command_in_server_ms_p50']} p99 {results['command_in_server_ms_p99']}, "
          f"datagram -> handler p50 {results['command_datagram_to_handler_ms_p50']} p99 "
          f"{results['command_datagram_to_handler_ms_p99']}, datagram -> publish p50 "
          f"{results['command_datagram_to_publish_ms_p50']} p99 "
          f"{results['command_datagram_to_publish_ms_p99']}; kernel arrival -> publish p50 "
          f"{results['command_wire_to_publish_ms_p50']} p99 "
          f"{results['command_wire_to_publish_ms_p99']} ({len(wire_to_publish)} matched), "
          f"browser -> kernel arrival p50 {results['command_browser_to_wire_ms_p50']} p99 "
          f"{results['command_browser_to_wire_ms_p99']}; "
          f"loop lag p50 {results['loop_lag_ms_p50']} p99 {results['loop_lag_ms_p99']} ms")
    if fake is not None:
        fake.close()
    h.close()
    if sim_process is not None:
        sim_process.terminate()
        sim_process.wait(10)
    rclpy.try_shutdown(context=context)

    empty = {"latency_ms_p95": None}
    top = results["viewers"].get("5") or (results["viewers"][str(max(counts))] if counts
                                          else empty)
    one = results["viewers"].get("1") or top
    robot_side = results["command_wire_to_publish_ms_p99"]
    results["command_robot_side_from"] = "kernel arrival"
    if robot_side is None:  # no capture (no CAP_NET_RAW): from the loop's read of it
        robot_side = results["command_datagram_to_publish_ms_p99"]
        results["command_robot_side_from"] = "loop read (no capture)"
    results["goals"] = {
        "p95_latency_le_80ms": one["latency_ms_p95"] is not None and one["latency_ms_p95"] <= 80,
        "command_p99_le_5ms": results["command_latency_ms_p99"] is not None
        and results["command_latency_ms_p99"] <= 5,
        # the same bound on the robot's own share, from the datagram's arrival in the kernel
        # (the browser shares these 2 cores here; deployed, it is on the visitor's device)
        "command_robot_side_p99_le_5ms": robot_side is not None and robot_side <= 5,
        "five_viewers_ge_25fps": "5" in results["viewers"]
        and results["viewers"]["5"]["fps_min"] >= 25,
    }
    results["load_average_1min"] = round(os.getloadavg()[0], 2)  # other work on the machine
    results["peer_p95_ms"] = PEER_P95_MS
    if one["latency_ms_p95"]:
        results["ratio_p95_to_peer"] = round(one["latency_ms_p95"] / PEER_P95_MS, 2)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
