/* Pilot page: code entry, video + sound, hold-to-drive buttons and keys, speed levels, look
 * around, places, click-to-go (map and video), single-switch scanning, session time. */
(function () {
  "use strict";
  const P = window.Passeur;
  const t = P.t;
  const $ = (id) => document.getElementById(id);
  const REPEAT_MS = 100; // well inside the server's 300 ms watchdog
  const KEYMAPS = {
    arrows: { ArrowUp: "forward", ArrowDown: "backward", ArrowLeft: "left", ArrowRight: "right" },
    wasd: { w: "forward", z: "forward", s: "backward", a: "left", q: "left", d: "right" },
  };

  const state = {
    conn: null, config: null, speedLevel: 2, mode: "hold", activeDir: null, repeat: null,
    expiresAt: null, lowWarned: false, navState: null, places: [], map: null,
    videoClick: false, mapClick: false, keyLayout: "arrows",
    scan: { on: false, rateS: 2.0, index: -1, timer: null },
  };

  function send(obj) {
    const conn = state.conn;
    if (conn && conn.channel.readyState === "open") {
      conn.channel.send(JSON.stringify(obj));
      return true;
    }
    return false;
  }

  // -- driving -------------------------------------------------------------------------------
  function driveMessage() {
    return { type: "drive", direction: state.activeDir, speed_level: state.speedLevel };
  }

  function startDrive(dir) {
    if (state.activeDir === dir) return;
    stopDrive(false);
    state.activeDir = dir;
    send(driveMessage());
    state.repeat = window.setInterval(() => send(driveMessage()), REPEAT_MS);
    document.querySelectorAll("button.drive").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.dir === dir)));
    $("motion").textContent = t("status.driving") + " : " + t("drive." + dir);
  }

  function stopDrive(announceIt) {
    if (state.repeat) window.clearInterval(state.repeat);
    state.repeat = null;
    const was = state.activeDir;
    state.activeDir = null;
    document.querySelectorAll("button.drive").forEach((b) => b.setAttribute("aria-pressed", "false"));
    if (was) {
      send({ type: "drive", linear: 0, angular: 0 });
      $("motion").textContent = t("status.stopped");
      if (announceIt) P.announce(t("status.stopped"));
    }
  }

  function stopAll() {
    stopDrive(false);
    send({ type: "stop" });
    $("motion").textContent = t("status.stopped");
    P.announce(t("status.stopped"));
  }

  function wireDriveButtons() {
    document.querySelectorAll("button.drive").forEach((button) => {
      const dir = button.dataset.dir;
      button.setAttribute("aria-pressed", "false");
      button.addEventListener("pointerdown", (ev) => {
        if (state.mode !== "hold" || state.scan.on) return;
        ev.preventDefault();
        try { button.setPointerCapture(ev.pointerId); } catch (e) { /* synthetic */ }
        startDrive(dir);
      });
      const release = () => { if (state.mode === "hold" && state.activeDir === dir) stopDrive(true); };
      button.addEventListener("pointerup", release);
      button.addEventListener("pointercancel", release);
      button.addEventListener("lostpointercapture", release);
      button.addEventListener("keydown", (ev) => {
        if ((ev.key === " " || ev.key === "Enter") && state.mode === "hold" && !state.scan.on) {
          ev.preventDefault(); // no click: holding the key drives, releasing it stops
          if (!ev.repeat) startDrive(dir);
        }
      });
      button.addEventListener("keyup", (ev) => {
        if ((ev.key === " " || ev.key === "Enter") && state.mode === "hold" && !state.scan.on) {
          ev.preventDefault();
          stopDrive(true);
        }
      });
      button.addEventListener("click", () => {
        // Toggle mode: one press starts, the next stops (no holding needed).
        if (state.mode !== "toggle" || state.scan.on) return;
        if (state.activeDir === dir) stopDrive(true); else startDrive(dir);
      });
      button.addEventListener("blur", () => { if (state.mode === "hold" && state.activeDir === dir && !state.scan.on) stopDrive(true); });
    });
    $("mode-hold").addEventListener("click", () => setMode("hold"));
    $("mode-toggle").addEventListener("click", () => setMode("toggle"));
    $("stop").addEventListener("click", () => { stopAll(); });
    document.querySelectorAll("[data-look]").forEach((b) => b.addEventListener("click", () => {
      if (state.scan.on) return;
      send({ type: "look", direction: b.dataset.look });
      P.announce(t("status.look"));
    }));
  }

  function setMode(mode) {
    stopDrive(false);
    state.mode = mode;
    $("mode-hold").setAttribute("aria-pressed", String(mode === "hold"));
    $("mode-toggle").setAttribute("aria-pressed", String(mode === "toggle"));
  }

  function buildSpeedLevels() {
    const box = $("speed-levels");
    box.textContent = "";
    const levels = (state.config && state.config.speed_levels) || [{}, {}, {}];
    state.speedLevel = Math.min(state.speedLevel, levels.length);
    levels.forEach((_lv, i) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "secondary";
      b.dataset.level = String(i + 1);
      b.textContent = t("speed.level", { n: i + 1 });
      b.setAttribute("aria-pressed", String(i + 1 === state.speedLevel));
      b.addEventListener("click", () => {
        state.speedLevel = i + 1;
        box.querySelectorAll("button").forEach((x) => x.setAttribute("aria-pressed", String(x === b)));
        P.announce(t("status.speed_level", { n: i + 1 }));
      });
      box.appendChild(b);
    });
  }

  // -- keyboard driving (switchable / remappable: WCAG 2.1.4) --------------------------------
  function keyDirection(ev) {
    const layout = state.keyLayout;
    if (layout === "off") return null;
    const key = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
    if ((layout === "arrows" || layout === "both") && KEYMAPS.arrows[key]) return KEYMAPS.arrows[key];
    if ((layout === "wasd" || layout === "both") && KEYMAPS.wasd[key]) return KEYMAPS.wasd[key];
    return null;
  }

  function typingTarget(el) {
    return el && (el.tagName === "INPUT" || el.tagName === "SELECT" || el.tagName === "TEXTAREA");
  }

  function wireKeys() {
    $("key-layout").addEventListener("change", (ev) => {
      state.keyLayout = ev.target.value;
      try { window.localStorage.setItem("passeur.keys", state.keyLayout); } catch (e) { /* ignore */ }
    });
    try {
      const saved = window.localStorage.getItem("passeur.keys");
      if (saved && ["arrows", "wasd", "both", "off"].includes(saved)) state.keyLayout = saved;
    } catch (e) { /* ignore */ }
    $("key-layout").value = state.keyLayout;
    document.addEventListener("keydown", (ev) => {
      if (state.scan.on && (ev.key === " " || ev.key === "Enter")) {
        ev.preventDefault();
        ev.stopPropagation();
        if (!ev.repeat) scanPress();
        return;
      }
      if (ev.key === "Escape" && state.conn) { ev.preventDefault(); stopAll(); return; } // always stops
      if (!state.conn || typingTarget(ev.target) || ev.ctrlKey || ev.altKey || ev.metaKey) return;
      const dir = keyDirection(ev);
      if (!dir) return;
      ev.preventDefault();
      if (!ev.repeat) startDrive(dir);
    }, true);
    document.addEventListener("keyup", (ev) => {
      const dir = keyDirection(ev);
      if (dir && state.activeDir === dir && state.mode === "hold" && !state.scan.on) stopDrive(true);
    }, true);
    window.addEventListener("blur", () => { if (!state.scan.on) stopDrive(false); });
  }

  // -- single-switch scanning ----------------------------------------------------------------
  function scanItems() {
    return Array.from(document.querySelectorAll(".scan-item, #scan-toggle")).filter((el) => el.offsetParent !== null && !el.disabled);
  }

  function scanHighlight(index) {
    const items = scanItems();
    items.forEach((el) => el.classList.remove("scan-highlight"));
    if (!items.length) return;
    state.scan.index = ((index % items.length) + items.length) % items.length;
    const el = items[state.scan.index];
    el.classList.add("scan-highlight");
    el.focus({ preventScroll: false });
  }

  function scanSchedule() {
    if (state.scan.timer) window.clearInterval(state.scan.timer);
    state.scan.timer = null;
    if (!state.scan.on || state.activeDir) return;
    state.scan.timer = window.setInterval(() => scanHighlight(state.scan.index + 1), state.scan.rateS * 1000);
  }

  function scanPress() {
    if (state.activeDir) { // a press while driving stops, then scanning resumes
      stopDrive(true);
      scanSchedule();
      return;
    }
    const items = scanItems();
    const el = items[state.scan.index];
    if (!el) { scanHighlight(0); return; }
    if (el.id === "scan-toggle") { setScanning(false); return; }
    if (el.classList.contains("drive")) {
      startDrive(el.dataset.dir); // latched: the next press stops
      if (state.scan.timer) window.clearInterval(state.scan.timer);
      state.scan.timer = null;
      return;
    }
    if (el.dataset.look) { send({ type: "look", direction: el.dataset.look }); P.announce(t("status.look")); return; }
    if (el.dataset.place) { gotoPlace(el.dataset.place, el.textContent); return; }
    if (el.id === "stop") { stopAll(); return; }
    el.click();
  }

  function setScanning(on) {
    state.scan.on = on;
    try { window.localStorage.setItem("passeur.scan", on ? "1" : "0"); } catch (e) { /* ignore */ }
    stopDrive(false);
    $("scan-toggle").setAttribute("aria-pressed", String(on));
    if (on) { scanHighlight(0); } else { scanItems().forEach((el) => el.classList.remove("scan-highlight")); }
    scanSchedule();
    P.announce(t(on ? "scan.on" : "scan.off"));
  }

  function showRate() {
    $("scan-rate").textContent = t("scan.seconds", { s: state.scan.rateS.toFixed(1) });
    try { window.localStorage.setItem("passeur.scanRate", String(state.scan.rateS)); } catch (e) { /* ignore */ }
  }

  function wireScanning() {
    $("scan-toggle").addEventListener("click", () => setScanning(!state.scan.on));
    try {
      const rate = Number(window.localStorage.getItem("passeur.scanRate"));
      if (rate >= 0.5 && rate <= 6) state.scan.rateS = rate;
    } catch (e) { /* ignore */ }
    $("scan-slower").addEventListener("click", () => { state.scan.rateS = Math.min(6, state.scan.rateS + 0.5); showRate(); scanSchedule(); });
    $("scan-faster").addEventListener("click", () => { state.scan.rateS = Math.max(0.5, state.scan.rateS - 0.5); showRate(); scanSchedule(); });
    showRate();
  }

  // -- places, map and click-to-go ------------------------------------------------------------
  function placeName(place) {
    const name = place.name || place.label || place.names || place.title;
    if (name && typeof name === "object") return name[window.I18N.lang] || name.en || name.fr || place.id;
    const localized = place["name_" + window.I18N.lang];
    return localized || name || place.id;
  }

  async function loadPlaces() {
    let result;
    try { result = await P.api("/api/places"); } catch (e) { result = { ok: false }; }
    const list = result.ok ? (Array.isArray(result.data) ? result.data : result.data.places) : null;
    if (!Array.isArray(list) || !list.length) { $("places-section").hidden = true; return; }
    state.places = list.filter((p) => p && typeof p.id === "string");
    renderPlaces();
    $("places-section").hidden = false;
  }

  function renderPlaces() {
    const box = $("places");
    box.textContent = "";
    for (const place of state.places) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "scan-item";
      b.dataset.place = place.id;
      b.textContent = placeName(place);
      b.addEventListener("click", () => { if (!state.scan.on) gotoPlace(place.id, b.textContent); });
      box.appendChild(b);
    }
  }

  function gotoPlace(id, name) {
    stopDrive(false);
    if (send({ type: "goto_place", id })) P.announce(t("status.going_to", { place: name || id }));
  }

  async function loadMap() {
    const meta = await P.api("/api/map");
    if (!meta.ok) { $("map-section").hidden = true; return; }
    state.map = meta.data;
    $("map-img").src = "/api/map.png?ts=" + Date.now();
    $("map-section").hidden = false;
  }

  function mapToPixel(x, y) {
    const m = state.map, img = $("map-img");
    const px = (x - m.origin_x_m) / m.resolution_m, py = m.height - (y - m.origin_y_m) / m.resolution_m;
    return [px * img.clientWidth / m.width, py * img.clientHeight / m.height];
  }

  function wireClickToGo() {
    const toggle = (id, key) => {
      $(id).addEventListener("click", () => {
        state[key] = !state[key];
        $(id).setAttribute("aria-pressed", String(state[key]));
        $(key === "videoClick" ? "video-wrap" : "map-wrap").classList.toggle("clickable", state[key]);
      });
    };
    toggle("video-click-mode", "videoClick");
    toggle("map-click-mode", "mapClick");
    $("video").addEventListener("click", (ev) => {
      const video = $("video");
      if (!state.videoClick || !video.videoWidth) return;
      const rect = video.getBoundingClientRect();
      const u = (ev.clientX - rect.left) * video.videoWidth / rect.width;
      const v = (ev.clientY - rect.top) * video.videoHeight / rect.height;
      stopDrive(false);
      send({ type: "goto_pixel", u: Math.round(u), v: Math.round(v) });
    });
    $("map-img").addEventListener("click", (ev) => {
      const m = state.map, img = $("map-img");
      if (!state.mapClick || !m) return;
      const rect = img.getBoundingClientRect();
      const px = (ev.clientX - rect.left) * m.width / rect.width;
      const py = (ev.clientY - rect.top) * m.height / rect.height;
      const x = m.origin_x_m + (px + 0.5) * m.resolution_m;
      const y = m.origin_y_m + (m.height - py - 0.5) * m.resolution_m;
      stopDrive(false);
      send({ type: "goto_point", x: Math.round(x * 100) / 100, y: Math.round(y * 100) / 100 });
    });
  }

  // -- server messages -------------------------------------------------------------------------
  function onMessage(msg) {
    switch (msg.type) {
      case "hello":
        state.expiresAt = Date.now() + msg.expires_in_s * 1000;
        break;
      case "status": {
        state.expiresAt = Date.now() + msg.expires_in_s * 1000;
        const robot = msg.robot || {};
        if (robot.estop && !state.lastEstop) P.announce(t("status.estop"), true);
        state.lastEstop = !!robot.estop;
        const nav = robot.navigation || {};
        if (nav.state && nav.state !== state.navState) {
          if (nav.state === "reached") P.announce(t("status.reached"));
          else if (nav.state === "failed") P.announce(t("status.nav_failed", { reason: nav.reason || "" }), true);
          state.navState = nav.state;
        }
        if (state.map && robot.pose) {
          const [mx, my] = mapToPixel(robot.pose.x, robot.pose.y);
          const marker = $("robot-marker");
          marker.style.left = mx + "px";
          marker.style.top = my + "px";
          marker.hidden = false;
        }
        break;
      }
      case "session":
        state.expiresAt = Date.now() + msg.expires_in_s * 1000;
        state.lowWarned = false;
        P.announce(t("status.extended"));
        break;
      case "ack":
        if (msg.action === "goto_point") P.announce(t("status.goto_point"));
        break;
      case "error":
        if (msg.code === "not_floor") P.announce(t("status.not_floor"), true);
        else if (msg.code === "session_ended") endSession("ended");
        else P.announce(P.errorText({ error: msg.code, message: msg.message }), true);
        break;
      case "session_ended":
        endSession(msg.reason);
        break;
      case "replaced":
        state.replaced = true;
        endSession("replaced");
        break;
      default:
        break;
    }
  }

  function endSession(reason) {
    stopDrive(false);
    if (state.scan.on) setScanning(false);
    if (state.conn) { try { state.conn.pc.close(); } catch (e) { /* closed */ } }
    state.conn = null;
    state.expiresAt = null;
    const key = reason === "taken_over" ? "status.taken_over" : reason === "expired" ? "status.expired"
      : reason === "replaced" ? "status.replaced" : "status.ended";
    P.announce(t(key), true);
    $("drive-section").hidden = true;
    $("code-section").hidden = false;
  }

  function onState(s) {
    if (s === "connected") {
      P.announce(t("status.connected"));
    } else if (s === "failed" || s === "closed" || s === "channel-closed") {
      if (state.conn && !state.replaced) {
        stopDrive(false);
        try { state.conn.pc.close(); } catch (e) { /* closed */ }
        state.conn = null;
        P.announce(t("status.disconnected"), true);
        window.setTimeout(reconnect, 2000);
      }
    }
  }

  // The link dropped (Wi-Fi, server restart): the robot stopped; come back if the session
  // is still valid.
  async function reconnect() {
    if (state.conn || state.replaced) return;
    let r;
    try { r = await P.api("/api/session"); } catch (e) { r = { ok: false, status: 0 }; }
    if (r.ok && r.data.role === "pilot") await connect();
    else if (r.status === 401) endSession("ended");
    else window.setTimeout(reconnect, 3000);
  }

  function tickClock() {
    if (!state.expiresAt) { $("time-left").textContent = ""; return; }
    const left = (state.expiresAt - Date.now()) / 1000;
    $("time-left").textContent = t("session.time_left", { t: P.formatTime(left) });
    if (left < 120 && !state.lowWarned) { state.lowWarned = true; P.announce(t("status.time_left_low"), true); }
  }

  // -- session ---------------------------------------------------------------------------------
  async function connect() {
    P.announce(t("status.connecting"));
    $("code-section").hidden = true;
    $("drive-section").hidden = false;
    try {
      state.conn = await P.connectRobot({ video: $("video"), sendAudio: true, onMessage, onState });
    } catch (e) {
      state.conn = null;
      $("drive-section").hidden = true;
      $("code-section").hidden = false;
      P.announce(P.errorText(e.data || { message: String(e) }), true);
      return;
    }
    $("mute-me").disabled = !state.conn.micTrack;
    loadPlaces();
    loadMap().catch(() => { $("map-section").hidden = true; });
    $("stop").focus();
    // A switch user who scanned last time starts scanning at once: the switch alone drives.
    let scanSaved = false;
    try { scanSaved = window.localStorage.getItem("passeur.scan") === "1"; } catch (e) { /* ignore */ }
    if (scanSaved && !state.scan.on) setScanning(true);
  }

  async function submitCode(ev) {
    ev.preventDefault();
    const code = $("code-input").value;
    const result = await P.api("/api/session", { code });
    if (!result.ok) { P.announce(P.errorText(result.data), true); $("code-input").focus(); return; }
    $("code-input").value = "";
    if (result.data.role === "spectator") { window.location.assign("/spectator/"); return; }
    await connect();
  }

  function wireSession() {
    $("code-form").addEventListener("submit", submitCode);
    $("extend").addEventListener("click", () => {
      if (!send({ type: "extend" })) P.api("/api/session/extend", {}).then((r) => { if (r.ok) onMessage({ type: "session", ...r.data }); });
    });
    $("leave").addEventListener("click", async () => {
      stopAll();
      await P.api("/api/session/end", {});
      endSession("left");
    });
    $("mute-me").addEventListener("click", () => {
      const track = state.conn && state.conn.micTrack;
      if (!track) return;
      track.enabled = !track.enabled;
      $("mute-me").setAttribute("aria-pressed", String(!track.enabled));
      send({ type: "mute", target: "robot_speaker", on: !track.enabled });
    });
    $("mute-robot").addEventListener("click", () => {
      const video = $("video");
      video.muted = !video.muted;
      $("mute-robot").setAttribute("aria-pressed", String(video.muted));
    });
  }

  async function init() {
    P.initPrefs();
    window.I18N.onChange(() => { buildSpeedLevels(); renderPlaces(); showRate(); tickClock(); });
    wireDriveButtons();
    wireKeys();
    wireScanning();
    wireClickToGo();
    wireSession();
    const cfg = await P.api("/api/config");
    state.config = cfg.ok ? cfg.data : null;
    buildSpeedLevels();
    window.setInterval(tickClock, 1000);
    // A code may arrive in the fragment (QR code); it never reaches a server. Remove it now.
    const match = /code=([0-9 -]{4,16})/.exec(window.location.hash || "");
    if (match) history.replaceState(null, "", window.location.pathname);
    const existing = await P.api("/api/session");
    if (existing.ok && existing.data.role === "pilot") await connect();
    else if (existing.ok && existing.data.role === "spectator") window.location.assign("/spectator/");
    else if (match) {
      // Opened from the staff's QR code: nothing to type, connect at once.
      $("code-input").value = match[1];
      await submitCode(new Event("submit"));
    }
    window.passeurPilot = { state, send, startDrive, stopDrive, setScanning };
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
