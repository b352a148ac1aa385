/* Pilot page: code entry, video + sound, hold-to-drive buttons and keys, speed levels, look
 * around, places, click-to-go (map and video), single-switch scanning, session time.
 *
 * Driving input, and what each one does:
 * - hold mode (default): pointer or Space/Enter held on a drive button, or a driving key held,
 *   drives; releasing stops. A click that no press preceded (a screen reader's browse mode, a
 *   dwell-clicking head mouse, element.click()) or a very short tap drives a bounded "nudge"
 *   (config nudge_ms, default 0.6 s) and stops by itself.
 * - toggle mode: one press (button, key) starts; the next press of any drive button or key stops.
 * - scanning (one switch = Space/Enter): the page highlights each action in turn; a press picks
 *   it; a press while driving stops. The cycle includes speeds, scan rate, places, look, stop,
 *   extend, leave and "scanning off". It starts at once from a staff link with `scan=1` (fragment or
 *   query), and is remembered on the device.
 * - keys: preset layouts, or "my keys": press a key to assign it to an action (localStorage).
 * - Escape always stops. The server stops the robot 300 ms after the last drive command. */
(function () {
  "use strict";
  const P = window.Passeur;
  const t = P.t;
  const $ = (id) => document.getElementById(id);
  const REPEAT_MS = 100; // well inside the server's 300 ms watchdog
  const TAP_MS = 250; // a press shorter than this is a tap: it becomes a nudge
  const CLICK_AFTER_PRESS_MS = 700; // the click that follows a real press is not a nudge
  const ACTIONS = ["forward", "backward", "left", "right"];
  const KEYMAPS = {
    arrows: { ArrowUp: "forward", ArrowDown: "backward", ArrowLeft: "left", ArrowRight: "right" },
    wasd: { w: "forward", z: "forward", s: "backward", a: "left", q: "left", d: "right" },
  };
  const DEFAULT_CUSTOM = { forward: "ArrowUp", backward: "ArrowDown", left: "ArrowLeft", right: "ArrowRight" };
  // Keys that already mean something on every page (moving focus, activating, stopping).
  const RESERVED_KEYS = ["Escape", "Tab", "Enter", " ", "Shift", "Control", "Alt", "AltGraph",
    "Meta", "CapsLock", "ContextMenu", "F5", "Dead", "Unidentified", "Process"];
  const KEY_LAYOUTS = ["arrows", "wasd", "both", "custom", "off"];

  const state = {
    conn: null, config: null, speedLevel: 2, mode: "hold", activeDir: null, repeat: null,
    expiresAt: null, warned: false, places: [], map: null,
    // The pilot's own navigation goal, known by the request_id the server's ack gives it
    // (acksAwaited: gotos sent whose ack has not come). The status's "pilot_goal" says what
    // became of it; arrivals, failures and cancellations of other goals are not news here.
    acksAwaited: 0, myRequest: null, myGoalState: null,
    videoClick: false, mapClick: false, keyLayout: "arrows", customKeys: { ...DEFAULT_CUSTOM },
    remapping: null, nudgeTimer: null, press: new Map(), extensionsLeft: null, micMuted: false,
    scan: { on: false, rateS: 2.0, index: -1, timer: null },
    // The route of the patrol running at the last status ("" none; null before any status).
    patrolRoute: null,
  };

  const PATROL_RUNNING = ["navigating", "announcing", "dwelling", "waiting_retry"];

  const GOTO_TYPES = ["goto_place", "goto_point", "goto_pixel"];

  function send(obj) {
    const conn = state.conn;
    if (conn && conn.channel.readyState === "open") {
      // Its ack will say which goal is this pilot's.
      if (GOTO_TYPES.includes(obj.type)) expectGoal();
      conn.channel.send(JSON.stringify(obj));
      return true;
    }
    return false;
  }

  function store(name, value) {
    try { window.localStorage.setItem("passeur." + name, value); } catch (e) { /* storage off */ }
  }
  function load(name) {
    try { return window.localStorage.getItem("passeur." + name); } catch (e) { return null; }
  }

  function nudgeMs() { return (state.config && state.config.nudge_ms) || 600; }
  function warningS() { return (state.config && state.config.session_warning_s) || 120; }

  // -- driving -------------------------------------------------------------------------------
  function driveMessage() {
    return { type: "drive", direction: state.activeDir, speed_level: state.speedLevel };
  }

  /* Under an e-stop the safety node holds the robot: saying "Moving" would be untrue. */
  function movingText(dir) {
    return state.lastEstop ? t("status.estop_holds") : t("status.moving", { dir: t("drive." + dir) });
  }

  /* `quiet`: the caller says it its own way (a nudge); a held key's repeats never get here. */
  function startDrive(dir, quiet) {
    if (state.activeDir === dir) {
      // A press or held key during a short step in the same direction: it is a hold now, so
      // the step's timer must not stop the robot under the visitor's finger.
      if (!quiet && state.nudgeTimer) { window.clearTimeout(state.nudgeTimer); state.nudgeTimer = null; }
      return;
    }
    stopDrive(false);
    forgetGoal(); // driving cancels the pilot's goal (server side): its "cancelled" is no news
    state.activeDir = dir;
    send(driveMessage());
    state.repeat = window.setInterval(() => send(driveMessage()), REPEAT_MS);
    document.querySelectorAll("button.drive").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.dir === dir)));
    const moving = movingText(dir);
    $("motion").textContent = moving;
    if (!quiet || state.lastEstop) P.announce(moving, state.lastEstop);
  }

  function stopDrive(announceIt) {
    if (state.repeat) window.clearInterval(state.repeat);
    state.repeat = null;
    if (state.nudgeTimer) window.clearTimeout(state.nudgeTimer);
    state.nudgeTimer = null;
    const was = state.activeDir;
    state.activeDir = null;
    document.querySelectorAll("button.drive").forEach((b) => b.setAttribute("aria-pressed", "false"));
    if (was) {
      send({ type: "drive", linear: 0, angular: 0 });
      $("motion").textContent = t("status.stopped");
      if (announceIt) P.announce(t("status.stopped"));
    }
    // A switch-latched drive ended by something other than the switch (the e-stop, a
    // let_go_first refusal): scanning resumes, or the highlight would stay on that drive
    // button and the switch's only possible action would be to drive again.
    if (state.scan.on && !state.scan.timer) scanSchedule();
  }

  /* A goal is on its way to the navigator / the pilot no longer has one (stopped, drove, left). */
  function expectGoal() { state.myRequest = null; state.myGoalState = null; state.acksAwaited += 1; }
  function forgetGoal() { state.myRequest = null; state.myGoalState = null; state.acksAwaited = 0; }

  function stopAll() {
    forgetGoal();
    stopDrive(false);
    send({ type: "stop" });
    $("motion").textContent = t("status.stopped");
    P.announce(t("status.stopped"));
  }

  /* A look-around step; under an e-stop the robot cannot turn, and the page says so. */
  function look(direction) {
    send({ type: "look", direction });
    P.announce(state.lastEstop ? t("status.estop_holds") : t("status.look"), state.lastEstop);
  }

  /* A bounded step: drive `dir` until `elapsedMs` + the rest of nudge_ms, then stop. */
  function nudge(dir, elapsedMs) {
    startDrive(dir, true);
    if (state.nudgeTimer) window.clearTimeout(state.nudgeTimer);
    state.nudgeTimer = window.setTimeout(() => {
      state.nudgeTimer = null;
      if (state.activeDir === dir) stopDrive(true);
    }, Math.max(0, nudgeMs() - (elapsedMs || 0)));
    if (!state.lastEstop) P.announce(t("status.nudge", { dir: t("drive." + dir) })); // else said above
  }

  /* Toggle mode: a press starts; any drive press while moving stops. */
  function togglePress(dir) {
    if (state.activeDir) stopDrive(true); else startDrive(dir);
  }

  function pressStart(button) { state.press.set(button, { start: performance.now(), end: null }); }

  /* Hold mode release: a long press stops; a tap becomes a nudge (head mice, quick clicks). */
  function pressEnd(button, dir) {
    const press = state.press.get(button);
    if (press && press.end === null) press.end = performance.now();
    if (state.activeDir !== dir) return;
    if (press && press.end - press.start < TAP_MS) nudge(dir, press.end - press.start);
    else stopDrive(true);
  }

  function wireDriveButtons() {
    document.querySelectorAll("button.drive").forEach((button) => {
      const dir = button.dataset.dir;
      button.setAttribute("aria-pressed", "false");
      button.addEventListener("pointerdown", (ev) => {
        if (state.mode !== "hold" || state.scan.on) return;
        ev.preventDefault();
        try { button.setPointerCapture(ev.pointerId); } catch (e) { /* synthetic */ }
        pressStart(button);
        startDrive(dir);
      });
      const release = () => { if (state.mode === "hold" && !state.scan.on) pressEnd(button, dir); };
      button.addEventListener("pointerup", release);
      button.addEventListener("pointercancel", release);
      button.addEventListener("lostpointercapture", release);
      button.addEventListener("keydown", (ev) => {
        if ((ev.key === " " || ev.key === "Enter") && state.mode === "hold" && !state.scan.on) {
          ev.preventDefault(); // no click: holding the key drives, releasing it stops
          if (!ev.repeat) { pressStart(button); startDrive(dir); }
        }
      });
      button.addEventListener("keyup", (ev) => {
        if ((ev.key === " " || ev.key === "Enter") && state.mode === "hold" && !state.scan.on) {
          ev.preventDefault();
          const press = state.press.get(button);
          if (press && press.end === null) press.end = performance.now();
          stopDrive(true);
        }
      });
      button.addEventListener("click", () => {
        if (state.scan.on) return; // the switch acts through scanPress
        if (state.mode === "toggle") { togglePress(dir); return; }
        // Hold mode: the click that ends a real press was handled by the press itself.
        const press = state.press.get(button);
        state.press.delete(button);
        if (press && (press.end === null || performance.now() - press.end < CLICK_AFTER_PRESS_MS)) return;
        nudge(dir, 0); // a bare click: screen reader, dwell click, switch software
      });
      button.addEventListener("blur", () => {
        if (state.mode === "hold" && state.activeDir === dir && !state.scan.on && !state.nudgeTimer) stopDrive(true);
      });
    });
    $("mode-hold").addEventListener("click", () => setMode("hold"));
    $("mode-toggle").addEventListener("click", () => setMode("toggle"));
    $("stop").addEventListener("click", () => { stopAll(); });
    document.querySelectorAll("[data-look]").forEach((b) => b.addEventListener("click", () => {
      if (state.scan.on) return;
      look(b.dataset.look);
    }));
  }

  function setMode(mode) {
    stopDrive(false);
    state.mode = mode;
    $("mode-hold").setAttribute("aria-pressed", String(mode === "hold"));
    $("mode-toggle").setAttribute("aria-pressed", String(mode === "toggle"));
    const help = $("drive-help");
    help.dataset.i18n = mode === "toggle" ? "drive.help_toggle" : "drive.help_hold";
    help.textContent = t(help.dataset.i18n);
  }

  function buildSpeedLevels() {
    const box = $("speed-levels");
    box.textContent = "";
    const levels = (state.config && state.config.speed_levels) || [{}, {}, {}];
    state.speedLevel = Math.min(state.speedLevel, levels.length);
    levels.forEach((_lv, i) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "secondary scan-item";
      b.dataset.level = String(i + 1);
      b.textContent = t("speed.level", { n: i + 1 });
      b.setAttribute("aria-pressed", String(i + 1 === state.speedLevel));
      b.addEventListener("click", () => {
        state.speedLevel = i + 1;
        box.querySelectorAll("button").forEach((x) => x.setAttribute("aria-pressed", String(x === b)));
        if (state.activeDir) send(driveMessage());
        P.announce(t("status.speed_level", { n: i + 1 }));
      });
      box.appendChild(b);
    });
  }

  // -- keyboard driving: switchable and remappable (WCAG 2.1.4) -------------------------------
  function normKey(key) { return key.length === 1 ? key.toLowerCase() : key; }

  /* The common special keys by their name in the page's language (not the browser's English
   * key value); letters in capitals; any other key as the browser names it. */
  function keyLabel(key) {
    const named = P.tOr("keys.name." + (key === " " ? "space" : key.toLowerCase()));
    return named || (key.length === 1 ? key.toUpperCase() : key);
  }

  function keyDirection(ev) {
    const layout = state.keyLayout;
    if (layout === "off") return null;
    const key = normKey(ev.key);
    if (layout === "custom") return ACTIONS.find((a) => state.customKeys[a] === key) || null;
    if ((layout === "arrows" || layout === "both") && KEYMAPS.arrows[key]) return KEYMAPS.arrows[key];
    if ((layout === "wasd" || layout === "both") && KEYMAPS.wasd[key]) return KEYMAPS.wasd[key];
    return null;
  }

  function typingTarget(el) {
    return el && (el.tagName === "INPUT" || el.tagName === "SELECT" || el.tagName === "TEXTAREA");
  }

  function setKeyLayout(layout) {
    state.keyLayout = layout;
    $("key-layout").value = layout;
    store("keys", layout);
  }

  function renderRemap() {
    const box = $("remap");
    box.textContent = "";
    for (const action of ACTIONS) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "secondary";
      b.id = "remap-" + action;
      b.dataset.remap = action;
      b.setAttribute("aria-pressed", String(state.remapping === action));
      b.textContent = t("keys.remap_button", { action: t("drive." + action), key: keyLabel(state.customKeys[action]) });
      b.addEventListener("click", () => {
        stopDrive(false);
        state.remapping = action;
        renderRemap();
        $("remap-" + action).focus();
        P.announce(t("keys.press_new", { action: t("drive." + action) }));
      });
      box.appendChild(b);
    }
  }

  /* The key pressed while remapping: assign it (swapping with the action that had it). */
  function assignKey(ev) {
    const action = state.remapping;
    if (ev.key === "Escape") { // cancels the choice, and still stops the robot (a place goal)
      state.remapping = null;
      if (state.conn) stopAll();
      renderRemap();
      P.announce(t("keys.cancelled"));
      return;
    }
    if (RESERVED_KEYS.includes(ev.key)) { P.announce(t("keys.reserved"), true); return; }
    const key = normKey(ev.key);
    const other = ACTIONS.find((a) => a !== action && state.customKeys[a] === key);
    if (other) state.customKeys[other] = state.customKeys[action];
    state.customKeys[action] = key;
    state.remapping = null;
    store("customKeys", JSON.stringify(state.customKeys));
    setKeyLayout("custom");
    renderRemap();
    $("remap-" + action).focus();
    P.announce(t("keys.assigned", { action: t("drive." + action), key: keyLabel(key) }));
  }

  function loadKeys() {
    const saved = load("keys");
    if (saved && KEY_LAYOUTS.includes(saved)) state.keyLayout = saved;
    try {
      const custom = JSON.parse(load("customKeys") || "null");
      if (custom && ACTIONS.every((a) => typeof custom[a] === "string" && custom[a].length > 0
          && custom[a].length < 20 && !RESERVED_KEYS.includes(custom[a]))) {
        state.customKeys = Object.fromEntries(ACTIONS.map((a) => [a, custom[a]]));
      }
    } catch (e) { /* malformed: keep the defaults */ }
    $("key-layout").value = state.keyLayout;
  }

  function wireKeys() {
    $("key-layout").addEventListener("change", (ev) => { stopDrive(false); setKeyLayout(ev.target.value); });
    $("keys-reset").addEventListener("click", () => {
      stopDrive(false);
      state.customKeys = { ...DEFAULT_CUSTOM };
      store("customKeys", JSON.stringify(state.customKeys));
      setKeyLayout("arrows");
      renderRemap();
      P.announce(t("keys.reset_done"));
    });
    loadKeys();
    renderRemap();
    document.addEventListener("keydown", (ev) => {
      if (state.remapping) { ev.preventDefault(); ev.stopPropagation(); assignKey(ev); return; }
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
      if (ev.repeat) return;
      if (state.mode === "toggle") togglePress(dir); else startDrive(dir);
    }, true);
    document.addEventListener("keyup", (ev) => {
      if (state.scan.on && (ev.key === " " || ev.key === "Enter")) {
        ev.preventDefault(); // the switch's release must not also click the highlighted item
        ev.stopPropagation();
        return;
      }
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
    if (el.dataset.look) { look(el.dataset.look); return; }
    if (el.dataset.place) { gotoPlace(el.dataset.place, el.textContent); return; }
    if (el.id === "stop") { stopAll(); return; }
    el.click(); // speeds, scan rate, extend, leave: their own click handlers
  }

  function setScanning(on) {
    state.scan.on = on;
    store("scan", on ? "1" : "0");
    stopDrive(false);
    $("scan-toggle").setAttribute("aria-pressed", String(on));
    if (on) { scanHighlight(0); } else { scanItems().forEach((el) => el.classList.remove("scan-highlight")); }
    scanSchedule();
    P.announce(t(on ? "scan.on" : "scan.off"));
  }

  function showRate() {
    $("scan-rate").textContent = t("scan.seconds", { s: state.scan.rateS.toFixed(1) });
    store("scanRate", String(state.scan.rateS));
  }

  function wireScanning() {
    $("scan-toggle").addEventListener("click", () => setScanning(!state.scan.on));
    const rate = Number(load("scanRate"));
    if (rate >= 0.5 && rate <= 6) state.scan.rateS = rate;
    $("scan-slower").addEventListener("click", () => { state.scan.rateS = Math.min(6, state.scan.rateS + 0.5); showRate(); scanSchedule(); });
    $("scan-faster").addEventListener("click", () => { state.scan.rateS = Math.max(0.5, state.scan.rateS - 0.5); showRate(); scanSchedule(); });
    showRate();
  }

  /* scan=1 in the staff's link (fragment or query): the visitor has only a switch. */
  function scanRequested() {
    const params = (window.location.hash || "").replace(/^#/, "") + "&" + (window.location.search || "").replace(/^\?/, "");
    return /(^|&)scan=1(&|$)/.test(params);
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
  /* The server's ack of a goto names the goal it sent for this page (its request_id). */
  function onGoalAck(msg) {
    if (!["goto_place", "goto_point"].includes(msg.action)) return; // a pixel's is goto_point
    if (!state.acksAwaited || typeof msg.request_id !== "string" || !msg.request_id) return;
    // Acks come in the order the gotos went: the last one's goal replaced the others.
    state.acksAwaited -= 1;
    state.myRequest = msg.request_id;
    state.myGoalState = null;
  }

  /* What became of this page's goal: the server follows it by its request_id (every status
   * of it, not only those sampled here), so another goal sent at about the same time (staff,
   * a patrol) is never taken for it. */
  function onPilotGoal(goal) {
    if (!goal || !state.myRequest || goal.request_id !== state.myRequest) return;
    if (goal.state === state.myGoalState) return;
    state.myGoalState = goal.state;
    const nav = goal; // its state, reason and reason_code, as navigation/status gave them
    if (nav.state === "reached") P.announce(t("status.reached"));
    else if (nav.state === "failed") P.announce(t("status.nav_failed", { reason: P.navReasonText(nav) }), true);
    // Not by this pilot (stopping or driving forgets the goal first): staff, a patrol, or
    // someone's new goal took the robot elsewhere while the pilot waited for it to arrive.
    else if (nav.state === "cancelled") {
      P.announce(nav.reason_code === "estop" ? t("status.nav_failed", { reason: P.navReasonText(nav) })
        : t("status.goal_taken"), true);
    }
    // Over (a goto sent since keeps its awaited ack).
    if (["reached", "failed", "cancelled"].includes(nav.state)) { state.myRequest = null; state.myGoalState = null; }
  }

  /* Staff started a patrol during this session (scheduled ones wait for its end): the robot
   * now moves by itself, and the pilot must hear why. One already running when the page
   * connected is not news. */
  function onPatrol(patrol) {
    const route = PATROL_RUNNING.includes(patrol.state) ? String(patrol.route || "?") : "";
    const before = state.patrolRoute;
    state.patrolRoute = route;
    if (before !== null && route && route !== before) P.announce(t("status.patrol_started"), true);
  }

  function setExpiry(msg) {
    if (typeof msg.expires_in_s !== "number") return;
    state.expiresAt = Date.now() + msg.expires_in_s * 1000;
    if (typeof msg.extensions_left === "number") state.extensionsLeft = msg.extensions_left;
    P.showExtendable("extend", "extend-none", state.extensionsLeft === 0);
  }

  function onMessage(msg) {
    switch (msg.type) {
      case "hello":
        setExpiry(msg);
        // The server starts every pilot connection with the robot's speaker on: a visitor who
        // had muted their microphone stays muted across a reconnect.
        if (state.micMuted) send({ type: "mute", target: "robot_speaker", on: true });
        break;
      case "status": {
        setExpiry(msg);
        const robot = msg.robot || {};
        if (robot.estop && !state.lastEstop) P.announce(t("status.estop"), true);
        else if (robot.estop === false && state.lastEstop) P.announce(t("status.estop_released"), true);
        // Its release must not set the robot moving: a held or latched drive ends here (the
        // server refuses drive commands until the pilot has let go).
        if (robot.estop && !state.lastEstop) stopDrive(false);
        // Released: let go for the pilot (the server refuses commands until a let-go sent
        // after the release); a control still held must be pressed again. A zero drive, not
        // a stop: a place chosen since the release (this status comes up to 0.5 s late)
        // must not be cancelled.
        if (robot.estop === false && state.lastEstop) {
          if (state.activeDir) stopDrive(false);
          else send({ type: "drive", linear: 0, angular: 0 });
        }
        const estopChanged = state.lastEstop !== !!robot.estop;
        state.lastEstop = !!robot.estop;
        if (estopChanged && state.activeDir) $("motion").textContent = movingText(state.activeDir);
        onPilotGoal(robot.pilot_goal);
        onPatrol(robot.patrol || {});
        const marker = $("robot-marker");
        // Only a map pose goes on the map (without a navigator the pose is odometry's).
        if (state.map && robot.pose && robot.pose.frame === "map") {
          const [mx, my] = mapToPixel(robot.pose.x, robot.pose.y);
          marker.style.left = mx + "px";
          marker.style.top = my + "px";
          marker.hidden = false;
        } else {
          marker.hidden = true;
        }
        break;
      }
      case "session":
        setExpiry(msg);
        state.warned = false;
        tickClock();
        P.announce(t("session.extended", { t: P.formatTime(msg.expires_in_s) })
          + (msg.extensions_left === 0 ? " " + t("session.no_more") : ""));
        break;
      case "ack":
        onGoalAck(msg);
        if (msg.action === "goto_point") P.announce(t("status.goto_point"));
        break;
      case "error":
        // A refused goto sent no goal.
        if (state.acksAwaited && ["not_floor", "no_camera", "not_driving"].includes(msg.code)) {
          state.acksAwaited -= 1;
        }
        if (msg.code === "not_floor") P.announce(t("status.not_floor"), true);
        else if (msg.code === "session_ended") endSession("ended");
        else if (msg.code === "let_go_first") {
          // Released while a control was still held: nothing moves until a new press.
          stopDrive(false);
          P.announce(P.errorText({ error: msg.code }), true);
        }
        else P.announce(P.errorText({ error: msg.code }), true);
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
    forgetGoal();
    if (state.scan.on) { setScanning(false); store("scan", "1"); } // keep the switch user's choice
    if (state.conn) { try { state.conn.pc.close(); } catch (e) { /* closed */ } }
    state.conn = null;
    state.expiresAt = null;
    // "Leave" ends the session twice (the server's session_ended, then the reply): say it once.
    if ($("drive-section").hidden) return;
    const key = reason === "taken_over" ? "status.taken_over" : reason === "expired" ? "status.expired"
      : reason === "replaced" ? "status.replaced" : "status.ended";
    P.announce(t(key), true);
    // Focus inside the panel that disappears would fall back to the page: keep it at hand.
    const active = document.activeElement;
    const focusLost = !active || active === document.body || $("drive-section").contains(active);
    $("drive-section").hidden = true;
    $("code-section").hidden = false;
    if (focusLost) $("code-input").focus();
  }

  function onState(s) {
    if (s === "connected") {
      P.announce(t("status.connected"));
    } else if (s === "failed" || s === "closed" || s === "channel-closed") {
      if (state.conn && !state.replaced) {
        stopDrive(false);
        forgetGoal(); // the server cancels the pilot's goal with the link: said as such below
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
    if (r.ok && r.data.role === "pilot") await connect(true);
    else if (r.status === 401) endSession("ended");
    else window.setTimeout(reconnect, 3000);
  }

  // Time limits (WCAG 2.2.1): a warning (assertive) before the end, with "Extend" at hand.
  function tickClock() {
    if (!state.expiresAt) { $("time-left").textContent = ""; return; }
    const left = (state.expiresAt - Date.now()) / 1000;
    $("time-left").textContent = t("session.time_left", { t: P.formatTime(left) });
    if (left < warningS() && !state.warned) {
      state.warned = true;
      P.announce(t(state.extensionsLeft === 0 ? "session.ending" : "session.warning", { t: P.formatTime(left) }), true);
    }
  }

  function extend() {
    if (!send({ type: "extend" })) {
      P.api("/api/session/extend", {}).then((r) => {
        if (r.ok) onMessage({ type: "session", ...r.data });
        else P.announce(P.errorText(r.data), true);
      });
    }
  }

  // -- session ---------------------------------------------------------------------------------
  async function connect(again) {
    P.announce(t("status.connecting"));
    $("code-section").hidden = true;
    $("drive-section").hidden = false;
    try {
      state.conn = await P.connectRobot({ video: $("video"), sendAudio: true, onMessage, onState });
    } catch (e) {
      state.conn = null;
      $("drive-section").hidden = true;
      $("code-section").hidden = false;
      $("code-input").focus();
      P.announce(P.errorText(e.data || { error: "bad_sdp" }), true);
      return;
    }
    // This tab drives again (a new code after another tab had taken the session over): its
    // own dropped links must again be said and reconnected.
    state.replaced = false;
    $("mute-me").disabled = !state.conn.micTrack;
    if (state.conn.micTrack) state.conn.micTrack.enabled = !state.micMuted; // a new track is live
    if (!again) {
      loadPlaces();
      loadMap().catch(() => { $("map-section").hidden = true; });
      $("stop").focus();
    }
    // A switch user (link with scan=1, or scanning last time) scans at once: the switch alone
    // drives, with nothing else to press first.
    if ((state.scanFromLink || load("scan") === "1") && !state.scan.on) setScanning(true);
  }

  async function submitCode(ev) {
    ev.preventDefault();
    const code = $("code-input").value;
    const result = await P.api("/api/session", { code });
    if (!result.ok) { P.announce(P.errorText(result.data), true); $("code-input").focus(); return; }
    $("code-input").value = "";
    if (result.data.role === "spectator") { window.location.assign("/spectator/"); return; }
    await connect(false);
  }

  function wireSession() {
    $("code-form").addEventListener("submit", submitCode);
    $("extend").addEventListener("click", extend);
    $("leave").addEventListener("click", async () => {
      stopAll();
      await P.api("/api/session/end", {});
      endSession("left");
    });
    $("mute-me").addEventListener("click", () => {
      const track = state.conn && state.conn.micTrack;
      if (!track) return;
      state.micMuted = !state.micMuted;
      track.enabled = !state.micMuted;
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
    window.I18N.onChange(() => { buildSpeedLevels(); renderPlaces(); renderRemap(); showRate(); tickClock(); });
    wireDriveButtons();
    wireKeys();
    wireScanning();
    wireClickToGo();
    wireSession();
    const cfg = await P.api("/api/config");
    state.config = cfg.ok ? cfg.data : null;
    buildSpeedLevels();
    setMode("hold");
    window.setInterval(tickClock, 1000);
    // A code may arrive in the fragment (QR code); it never reaches a server. Remove it now.
    state.scanFromLink = scanRequested();
    if (state.scanFromLink) store("scan", "1");
    const match = /code=([0-9 -]{4,16})/.exec(window.location.hash || "");
    if (match || state.scanFromLink) history.replaceState(null, "", window.location.pathname);
    const existing = await P.api("/api/session");
    if (existing.ok && existing.data.role === "pilot") await connect(false);
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
