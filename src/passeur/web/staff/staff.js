/* Staff page: log in, robot status, e-stop, access codes with QR, end/take over the pilot
 * session, patrols (through navigation's /api/patrols when it is mounted), link quality in
 * words. Everything the robot reports arrives as codes and is shown in the page's language.
 * The staff session has a time limit: a warning before it ends, "Extend", and a clear message
 * (not a silent return to the login form) when it has ended (WCAG 2.2.1). */
(function () {
  "use strict";
  const P = window.Passeur;
  const t = P.t;
  const $ = (id) => document.getElementById(id);
  let poll = null, map = null, routes = [], conn = null, lastStatus = null, config = null;
  let placeNames = {}; // place id -> {"fr", "en"} (from /api/patrols): names, not ids, on the desk
  let offline = false; // the robot's server did not answer the last status request
  let expiresAt = null, warned = false, extensionsLeft = null, loggedIn = false, watching = false;

  function fmt(v, digits) { return (typeof v === "number") ? v.toFixed(digits) : t("staff.unknown"); }

  /* `prefix + code` translated, else the code itself (a value nobody translated yet). */
  function word(prefix, code) { return code ? (P.tOr(prefix + code) || code) : ""; }

  function poseText(pose) {
    if (!pose) return t("staff.unknown");
    const vars = { x: fmt(pose.x, 2), y: fmt(pose.y, 2), yaw: fmt(pose.yaw * 180 / Math.PI, 0) };
    return t(pose.frame === "map" ? "staff.pose_map" : "staff.pose_odom", vars);
  }

  function navText(nav) {
    if (!nav.state) return t("staff.unknown");
    const reason = nav.state === "failed" || nav.reason_code === "estop" ? P.navReasonText(nav) : "";
    const goal = nav.place ? P.localName(placeNames[nav.place], nav.place) : nav.goal;
    return [word("nav.state.", nav.state), goal, reason].filter(Boolean).join(" · ");
  }

  function patrolText(patrol) {
    if (!patrol.state) return t("staff.unknown");
    const route = routes.find((r) => (r.id || r.route || r.name) === patrol.route);
    const routeName = route ? P.localName(route.names, patrol.route) : patrol.route;
    const parts = [patrol.route ? t("patrol.line", { route: routeName, state: word("patrol.state.", patrol.state) })
      : word("patrol.state.", patrol.state)];
    if (patrol.state !== "idle" && patrol.place && patrol.state !== "finished") {
      parts.push(P.localName(placeNames[patrol.place], patrol.place));
    }
    if (patrol.state === "finished" && patrol.outcome) parts.push(word("patrol.outcome.", patrol.outcome));
    // "interrupted" with a cause (the e-stop, the pilot's drive, a cancel): the cause says why,
    // not "by another goal".
    const reasonCode = patrol.reason_code === "interrupted" && patrol.cause_code ? "interrupted_for" : patrol.reason_code;
    if (reasonCode) parts.push(word("patrol.reason.", reasonCode));
    if (patrol.cause_code) parts.push(P.tOr("nav.reason." + patrol.cause_code) || t("nav.reason.other"));
    // A scheduled route that fell due during the e-stop or a pilot's session: it has not
    // run yet. After a pilot's session it starts by itself; after an e-stop only by hand.
    if (patrol.waiting_routes) {
      const names = patrol.waiting_routes.split(",").map((id) => {
        const r = routes.find((x) => (x.id || x.route || x.name) === id);
        return r ? P.localName(r.names, id) : id;
      }).join(", ");
      const why = word("patrol.waiting_for.", patrol.waiting_for) || t("patrol.waiting_for.starting");
      parts.push(t("patrol.waiting", { routes: names, why }));
    }
    return parts.filter(Boolean).join(" · ");
  }

  function safetyText(safety) {
    if (!safety.reason && !safety.source) return t("staff.unknown");
    return [word("safety.source.", safety.source), word("safety.reason.", safety.reason)].filter(Boolean).join(" · ");
  }

  function render(status) {
    lastStatus = status;
    const robot = status.robot || {};
    $("s-estop").textContent = robot.estop === true ? t("staff.estop_active") : robot.estop === false ? t("staff.estop_inactive") : t("staff.unknown");
    $("s-pose").textContent = poseText(robot.pose);
    $("s-speed").textContent = robot.speed ? `${fmt(robot.speed.linear_mps, 2)} m/s, ${fmt(robot.speed.angular_rps, 2)} rad/s` : t("staff.unknown");
    const pilot = status.pilot;
    $("s-pilot").textContent = !pilot ? t("staff.no_pilot") : pilot.connected ? t("staff.pilot_connected", { t: P.formatTime(pilot.expires_in_s) }) : t("staff.pilot_waiting");
    $("s-nav").textContent = navText(robot.navigation || {});
    $("s-patrol").textContent = patrolText(robot.patrol || {});
    $("s-safety").textContent = safetyText(robot.safety || {});
    $("live-codes").textContent = t("staff.live_codes", { n: (status.codes || []).length });
    if (status.staff_session) setExpiry(status.staff_session);
    renderLinks(status.peers || []);
    const marker = $("robot-marker");
    marker.hidden = true; // only a map pose goes on the map
    if (map && robot.pose && robot.pose.frame === "map") {
      const img = $("map-img");
      const px = (robot.pose.x - map.origin_x_m) / map.resolution_m, py = map.height - (robot.pose.y - map.origin_y_m) / map.resolution_m;
      marker.style.left = (px * img.clientWidth / map.width) + "px";
      marker.style.top = (py * img.clientHeight / map.height) + "px";
      marker.hidden = false;
    }
  }

  /* Refreshed every second: the table is built once and only the text that changed is
   * replaced, so a screen reader reading it keeps its place. */
  function setText(el, text) { if (el.textContent !== text) el.textContent = text; }

  function renderLinks(peers) {
    const box = $("links");
    let table = box.querySelector("table"), none = box.querySelector("p");
    if (!peers.length) {
      if (table) table.remove();
      if (!none) { none = document.createElement("p"); box.appendChild(none); }
      setText(none, t("staff.link_none"));
      return;
    }
    if (none) none.remove();
    const keys = ["staff.role", "staff.state", "staff.quality", "staff.rtt", "staff.loss"];
    if (!table) {
      table = document.createElement("table");
      const head = table.insertRow();
      for (let i = 0; i < keys.length; i++) {
        const th = document.createElement("th"); th.scope = "col"; head.appendChild(th);
      }
      box.appendChild(table);
    }
    keys.forEach((key, i) => setText(table.rows[0].cells[i], t(key)));
    const num = (v, d) => (typeof v === "number" ? v.toFixed(d) : "–");
    peers.forEach((peer, n) => {
      let row = table.rows[n + 1];
      if (!row) {
        row = table.insertRow();
        for (let i = 0; i < keys.length; i++) row.insertCell();
      }
      row.dataset.role = peer.role;
      row.dataset.quality = peer.quality || "unknown";
      const quality = peer.quality && peer.quality !== "unknown"
        ? t("link.value", { quality: t("link." + peer.quality), rtt: num(peer.rtt_ms, 0), loss: num(peer.loss_pct, 1) })
        : t("link.unknown");
      [word("role.", peer.role), word("conn.", peer.state), quality, num(peer.rtt_ms, 0), num(peer.loss_pct, 1)]
        .forEach((v, i) => setText(row.cells[i], String(v)));
    });
    while (table.rows.length > peers.length + 1) table.deleteRow(-1);
  }

  function setExpiry(session) {
    if (typeof session.expires_in_s !== "number") return;
    expiresAt = Date.now() + session.expires_in_s * 1000;
    if (typeof session.extensions_left === "number") extensionsLeft = session.extensions_left;
    P.showExtendable("staff-extend", "staff-extend-none", extensionsLeft === 0);
  }

  function warningS() { return (config && config.session_warning_s) || 120; }

  function tickClock() {
    if (!expiresAt || !loggedIn) { $("staff-time").textContent = ""; return; }
    const left = (expiresAt - Date.now()) / 1000;
    $("staff-time").textContent = t("staff.session_time", { t: P.formatTime(left) });
    if (left < warningS() && !warned) {
      warned = true;
      P.announce(t(extensionsLeft === 0 ? "session.ending" : "session.warning", { t: P.formatTime(left) }), true);
    }
    if (left <= 0) refresh(); // the server decides; a 401 then says so
  }

  /* The robot's server stopped answering (Wi-Fi, a restart): the last figures are no longer
   * true, so they are not left on screen as if they were (e-stop "off", a speed...). */
  function showOffline() {
    lastStatus = null;
    for (const id of ["s-estop", "s-pose", "s-speed", "s-pilot", "s-nav", "s-patrol", "s-safety"]) {
      $(id).textContent = t("staff.unknown");
    }
    $("robot-marker").hidden = true;
    if (!offline) P.announce(t("staff.offline"), true);
    offline = true;
  }

  async function refresh() {
    let r;
    try { r = await P.api("/api/staff/status"); } catch (e) { if (loggedIn) showOffline(); return; }
    if (offline) { offline = false; P.announce(t("staff.online")); }
    if (r.status === 401) { showLogin(loggedIn ? "staff.session_ended" : null); return; }
    if (r.ok) render(r.data);
  }

  function showLogin(messageKey) {
    closeVideo();
    if (poll) window.clearInterval(poll);
    poll = null;
    loggedIn = false;
    expiresAt = null;
    $("staff-time").textContent = "";
    // Focus inside the desk that disappears would fall back to the page: keep it at hand.
    const active = document.activeElement;
    const focusLost = !$("desk").hidden && (!active || active === document.body || $("desk").contains(active));
    $("desk").hidden = true;
    $("login-section").hidden = false;
    if (focusLost) $("password").focus();
    if (messageKey) P.announce(t(messageKey), true);
  }

  async function showDesk() {
    loggedIn = true;
    warned = false;
    $("login-section").hidden = true;
    $("desk").hidden = false;
    await refresh();
    poll = window.setInterval(refresh, 1000);
    const meta = await P.api("/api/map");
    if (meta.ok) { map = meta.data; $("map-img").src = "/api/map.png?ts=" + Date.now(); $("map-box").hidden = false; }
    await loadPatrols();
  }

  async function loadPatrols() {
    let r;
    try { r = await P.api("/api/patrols"); } catch (e) { r = { ok: false }; }
    const list = r.ok ? (Array.isArray(r.data) ? r.data : (r.data.routes || r.data.patrols)) : null;
    const box = $("patrols");
    box.textContent = "";
    if (!Array.isArray(list) || !list.length) { $("no-patrols").hidden = false; $("patrol-stop").hidden = true; return; }
    routes = list;
    placeNames = (r.data && typeof r.data.places === "object" && r.data.places) || {};
    $("no-patrols").hidden = true;
    $("patrol-stop").hidden = false;
    for (const route of routes) {
      const id = route.id || route.route || route.name;
      let name = route.names || route.name || id;
      if (name && typeof name === "object") name = name[window.I18N.lang] || name.en || id;
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = t("staff.patrol_start", { name });
      b.addEventListener("click", async () => {
        const res = await P.api("/api/patrols/start", { route: id });
        // Refused during the e-stop: say what to do, not only that the robot cannot move.
        const refusal = !res.ok && res.data && res.data.error === "estop" ? t("staff.patrol_estop") : P.errorText(res.data);
        P.announce(res.ok ? t("staff.done") : refusal, !res.ok);
      });
      box.appendChild(b);
    }
  }

  /* The code just created, in the page's language (again after a language switch). */
  function showCode() {
    const code = $("code-text").dataset.code;
    if (!code) return;
    $("code-text").textContent = t("staff.new_code", { code: code.slice(0, 4) + " " + code.slice(4) });
  }

  /* The desk's own video: closed when the staff session ends (the server drops it then), so
   * that "Show the video" works again after logging back in instead of doing nothing. */
  function closeVideo() {
    const old = conn;
    conn = null;
    if (old) { try { old.pc.close(); } catch (e) { /* closed */ } }
    $("video").srcObject = null;
    $("video-wrap").hidden = true;
  }

  /* The e-stop is sent on a topic and asked of the safety node; only the safety node's answer
   * says it holds. Unconfirmed (safety node down, not answering in 2 s), "Done." would be
   * a false reassurance: say it plainly instead. */
  async function estop(on) {
    const r = await P.api("/api/staff/estop", { on });
    if (r.status === 401) { showLogin(loggedIn ? "staff.session_ended" : null); return; }
    if (!r.ok) P.announce(P.errorText(r.data), true);
    else if (r.data.acknowledged === false) P.announce(t(on ? "staff.estop_unconfirmed" : "staff.release_unconfirmed"), true);
    else P.announce(t("staff.done"));
    refresh();
  }

  /* `okText(data)`: what a success says, when "Done." would not be true to it. */
  async function post(path, body, okText) {
    const r = await P.api(path, body || {});
    if (r.status === 401) { showLogin(loggedIn ? "staff.session_ended" : null); return r; }
    P.announce(r.ok ? (okText ? okText(r.data) : t("staff.done")) : P.errorText(r.data), !r.ok);
    refresh();
    return r;
  }

  async function init() {
    P.initPrefs();
    window.I18N.onChange(() => { if (lastStatus) render(lastStatus); loadPatrols(); tickClock(); showCode(); });
    const cfg = await P.api("/api/config");
    config = cfg.ok ? cfg.data : null;
    window.setInterval(tickClock, 1000);
    $("staff-extend").addEventListener("click", async () => {
      const r = await P.api("/api/staff/extend", {});
      if (r.status === 401) { showLogin("staff.session_ended"); return; }
      if (!r.ok) { P.announce(P.errorText(r.data), true); return; }
      setExpiry(r.data);
      warned = false;
      tickClock();
      P.announce(t("session.extended", { t: P.formatTime(r.data.expires_in_s) })
        + (r.data.extensions_left === 0 ? " " + t("session.no_more") : ""));
    });
    $("login-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const r = await P.api("/api/staff/login", { password: $("password").value });
      $("password").value = "";
      if (!r.ok) { P.announce(P.errorText(r.data), true); return; }
      P.announce(t("staff.logged_in"));
      setExpiry(r.data);
      await showDesk();
    });
    $("logout").addEventListener("click", async () => { await P.api("/api/staff/logout", {}); showLogin(null); });
    $("estop-on").addEventListener("click", () => estop(true));
    $("estop-off").addEventListener("click", () => estop(false));
    $("end-pilot").addEventListener("click", () => post("/api/staff/end_pilot", {},
      (data) => (data.ended === false ? t("staff.no_pilot_to_end") : t("staff.done"))));
    $("takeover").addEventListener("click", async () => {
      const r = await post("/api/staff/takeover");
      if (r.ok) window.open("/pilot/", "_blank", "noopener");
    });
    $("revoke").addEventListener("click", () => {
      post("/api/staff/codes/revoke", {},
        (data) => (data.revoked === 0 ? t("staff.no_code_to_revoke") : t("staff.done")));
      $("new-code").hidden = true;
    });
    $("patrol-stop").addEventListener("click", () => post("/api/patrols/stop", {},
      (data) => (data.stopped === false ? t("staff.no_patrol_to_stop") : t("staff.done"))));
    $("code-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const role = document.querySelector('input[name="role"]:checked').value;
      const scan = role === "pilot" && $("scan-link").checked;
      const r = await P.api("/api/staff/codes", { role, minutes: Number($("minutes").value), scan });
      if (!r.ok) { P.announce(P.errorText(r.data), true); return; }
      $("code-text").dataset.code = r.data.code;
      showCode();
      $("qr").innerHTML = r.data.qr_svg; // server-made SVG (segno)
      $("code-link").href = r.data.link;
      $("code-link").textContent = r.data.link;
      $("new-code").hidden = false;
      refresh();
    });
    $("watch").addEventListener("click", async () => {
      if (conn || watching) return;
      watching = true;
      $("video-wrap").hidden = false;
      const onState = (st) => {
        if (st === "failed" || st === "closed" || st === "channel-closed") closeVideo();
      };
      try {
        // As staff, even with a pilot cookie from "Take over" in this browser: watching from
        // the desk must not replace (and so end) the pilot page that staff opened.
        conn = await P.connectRobot({ video: $("video"), sendAudio: false, as: "staff", onState });
      } catch (e) {
        closeVideo();
        P.announce(P.errorText(e.data || { error: "bad_sdp" }), true);
      } finally {
        watching = false;
      }
    });
    const r = await P.api("/api/staff/status");
    if (r.ok) await showDesk(); else showLogin(null);
    window.passeurStaff = { refresh };
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
