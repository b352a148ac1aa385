"""Browser and stack helpers for the telepresence end-to-end tests and benchmark.

Chromium is Debian's (/usr/bin/chromium), driven by Python Playwright with the flags measured
in ENVIRONMENT.md; never `playwright install`. Each browser gets a fresh profile.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
AXE = Path(os.environ.get("PASSEUR_AXE_JS", ROOT / "node_modules" / "axe-core" / "axe.min.js"))
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]


def launch(playwright: Any, extra: list[str] | None = None) -> Any:
    """A headless Chromium with a fresh temporary profile (Playwright makes one per launch)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=FLAGS + (extra or []))


@contextlib.contextmanager
def killable_chromium(playwright: Any) -> Iterator[tuple[Any, subprocess.Popen[bytes]]]:
    """Chromium started by us (so that a test can SIGKILL it), connected over CDP."""
    profile = tempfile.mkdtemp(prefix="passeur-chromium-")
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH",)}
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", f"--user-data-dir={profile}", "--remote-debugging-port=0",
         *FLAGS, "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True)
    assert proc.stderr is not None
    endpoint = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode("utf-8", "replace")
        found = re.search(r"DevTools listening on (ws://\S+)", line)
        if found:
            endpoint = found.group(1)
            break
        if not line and proc.poll() is not None:
            break
    if endpoint is None:
        proc.kill()
        raise RuntimeError("chromium did not start its DevTools endpoint")
    threading.Thread(target=lambda: proc.stderr.read() if proc.stderr else None,
                     daemon=True).start()  # keep draining so it never blocks
    browser = playwright.chromium.connect_over_cdp(endpoint.replace("localhost", "127.0.0.1"))
    try:
        yield browser, proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        import shutil

        shutil.rmtree(profile, ignore_errors=True)


def run_axe(page: Any) -> list[dict[str, Any]]:
    """axe-core violations on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})")
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["target"] for n in v["nodes"]][:5]} for v in result["violations"]]


#: JavaScript: count frames the <video> presented, and grab the current one as RGB.
VIDEO_JS = """
(id) => {
  const v = document.getElementById(id);
  if (!v.__passeurCount) {
    v.__passeurCount = {n: 0};
    const cb = () => { v.__passeurCount.n++; v.requestVideoFrameCallback(cb); };
    v.requestVideoFrameCallback(cb);
  }
  return v.__passeurCount.n;
}
"""

GRAB_JS = """
(id) => {
  const v = document.getElementById(id);
  if (!v.videoWidth) return null;
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let s = '';
  const chunk = 0x8000;
  for (let i = 0; i < d.length; i += chunk) s += String.fromCharCode.apply(null, d.subarray(i, i + chunk));
  return {w: c.width, h: c.height, rgba: btoa(s)};
}
"""


def grab_frame(page: Any, element_id: str = "video") -> np.ndarray | None:
    import base64

    data = page.evaluate(GRAB_JS, element_id)
    if data is None:
        return None
    rgba = np.frombuffer(base64.b64decode(data["rgba"]), dtype=np.uint8)
    return rgba.reshape(data["h"], data["w"], 4)[:, :, :3].copy()


def image_msg_to_rgb(msg: Any) -> np.ndarray:
    rows = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)
    rgb = rows[:, : msg.width * 3].reshape(msg.height, msg.width, 3)
    return rgb[:, :, ::-1].copy() if msg.encoding == "bgr8" else rgb.copy()


def importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def sim_available() -> bool:
    return importable("passeur.sim.sim_node")


def safety_available() -> bool:
    return importable("passeur.safety.safety_node")


class TeleopRelay:
    """Until the safety node is merged: pass cmd_vel/teleop to cmd_vel unchanged (the mux's
    teleop branch), so the simulator moves when the pilot drives."""

    def __init__(self, harness: Any) -> None:
        from geometry_msgs.msg import Twist

        from passeur.ros import qos

        pub = harness.probe.create_publisher(Twist, "cmd_vel", qos.COMMAND)
        harness.probe.create_subscription(Twist, "cmd_vel/teleop", pub.publish, qos.COMMAND)


class FakeBase:
    """Until the simulator is merged: a probe that plays camera + odometry and integrates
    cmd_vel/teleop like a differential base, so browser tests can check motion."""

    def __init__(self, harness: Any, rate_hz: float = 15.0) -> None:
        from geometry_msgs.msg import Twist

        from passeur.ros import qos

        self.h = harness
        self.rate_hz = rate_hz
        self.x = self.y = self.yaw = 0.0
        self.v = self.w = 0.0
        self.last_cmd = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()

        def on_cmd(msg: Twist) -> None:
            with self._lock:
                self.v, self.w = msg.linear.x, msg.angular.z
                self.last_cmd = time.monotonic()

        harness.probe.create_subscription(Twist, "cmd_vel/teleop", on_cmd, qos.COMMAND)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from nav_msgs.msg import Odometry
        from sensor_msgs.msg import Image

        from passeur.ros import qos

        period, i = 1 / self.rate_hz, 0
        while not self._stop.wait(period):
            with self._lock:
                if time.monotonic() - self.last_cmd > 0.5:  # like the mux: silence is zero
                    self.v = self.w = 0.0
                self.x += self.v * math.cos(self.yaw) * period
                self.y += self.v * math.sin(self.yaw) * period
                self.yaw += self.w * period
                v, w = self.v, self.w
            odom = Odometry()
            odom.header.frame_id = "odom"
            odom.pose.pose.position.x, odom.pose.pose.position.y = self.x, self.y
            odom.pose.pose.orientation.z = math.sin(self.yaw / 2)
            odom.pose.pose.orientation.w = math.cos(self.yaw / 2)
            odom.twist.twist.linear.x, odom.twist.twist.angular.z = v, w
            self.h.publish("odom", odom, qos.SENSOR)
            img = np.zeros((480, 640, 3), np.uint8)
            img[:240] = (150, 190, 230)
            img[240:] = (120, 100, 80)
            shift = int(self.x * 100) % 640
            img[100:400, (shift + np.arange(40)) % 640] = (200, 40, 40)
            msg = Image(height=480, width=640, encoding="rgb8", step=1920, data=img.tobytes())
            msg.header.frame_id = "camera_optical_link"
            self.h.publish("camera/image_raw", msg, qos.SENSOR)
            i += 1

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)


#: JavaScript: visible interactive elements smaller than `min` CSS px in either dimension.
SMALL_TARGETS_JS = """
(min) => Array.from(document.querySelectorAll(
    'button, select, input, textarea, a[href], summary, [role="button"], [tabindex]:not([tabindex="-1"])'))
  .filter(el => el.offsetParent !== null && !el.disabled)
  .map(el => { const r = el.getBoundingClientRect();
               return {id: el.id || el.dataset.dir || el.dataset.level || el.dataset.lang
                           || el.dataset.pref || el.dataset.place || el.dataset.remap
                           || (el.name ? el.name + ':' + el.value : '') || el.tagName,
                       w: Math.round(r.width * 10) / 10, h: Math.round(r.height * 10) / 10}; })
  .filter(t => t.w < min || t.h < min)
"""


def small_targets(page: Any, min_px: float = 44.0) -> list[dict[str, Any]]:
    """Interactive elements under min_px x min_px CSS pixels (WCAG 2.5.5), no exemptions."""
    return list(page.evaluate(SMALL_TARGETS_JS, min_px))
