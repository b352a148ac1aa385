/* Staff page: log in, robot status, e-stop, access codes with QR, end/take over the pilot
 * session, patrols (through navigation's /api/patrols when it is mounted). */
(function () {
  "use strict";
  const P = window.Passeur;
  const t = P.t;
  const $ = (id) => document.getElementById(id);
  let poll = null, map = null, routes = [], conn = null, lastStatus = null;

  function fmt(v, digits) { return (typeof v === "number") ? v.toFixed(digits) : t("staff.unknown"); }

  function render(status) {
    lastStatus = status;
    const robot = status.robot || {};
    $("s-estop").textContent = robot.estop === true ? t("staff.estop_active") : robot.estop === false ? t("staff.estop_inactive") : t("staff.unknown");
    $("s-pose").textContent = robot.pose ? `x ${fmt(robot.pose.x, 2)} m, y ${fmt(robot.pose.y, 2)} m, ${fmt(robot.pose.yaw * 180 / Math.PI, 0)}°` : t("staff.unknown");
    $("s-speed").textContent = robot.speed ? `${fmt(robot.speed.linear_mps, 2)} m/s, ${fmt(robot.speed.angular_rps, 2)} rad/s` : t("staff.unknown");
    const pilot = status.pilot;
    $("s-pilot").textContent = !pilot ? t("staff.no_pilot") : pilot.connected ? t("staff.pilot_connected", { t: P.formatTime(pilot.expires_in_s) }) : t("staff.pilot_waiting");
    const nav = robot.navigation || {};
    $("s-nav").textContent = nav.state ? [nav.state, nav.goal, nav.reason].filter(Boolean).join(" · ") : t("staff.unknown");
    const patrol = robot.patrol || {};
    $("s-patrol").textContent = patrol.message || patrol.state || t("staff.unknown");
    const safety = robot.safety || {};
    $("s-safety").textContent = (safety.source || safety.reason) ? [safety.source, safety.reason].filter(Boolean).join(" · ") : (safety.message || t("staff.unknown"));
    $("live-codes").textContent = t("staff.live_codes", { n: (status.codes || []).length });
    renderLinks(status.peers || []);
    if (map && robot.pose) {
      const img = $("map-img");
      const px = (robot.pose.x - map.origin_x_m) / map.resolution_m, py = map.height - (robot.pose.y - map.origin_y_m) / map.resolution_m;
      const marker = $("robot-marker");
      marker.style.left = (px * img.clientWidth / map.width) + "px";
      marker.style.top = (py * img.clientHeight / map.height) + "px";
      marker.hidden = false;
    }
  }

  function renderLinks(peers) {
    const box = $("links");
    box.textContent = "";
    if (!peers.length) { const p = document.createElement("p"); p.textContent = t("staff.link_none"); box.appendChild(p); return; }
    const table = document.createElement("table");
    const head = table.insertRow();
    for (const key of ["staff.role", "staff.state", "staff.rtt", "staff.lost"]) {
      const th = document.createElement("th"); th.scope = "col"; th.textContent = t(key); head.appendChild(th);
    }
    for (const peer of peers) {
      const row = table.insertRow();
      for (const v of [peer.role, peer.state, peer.rtt_ms == null ? "–" : peer.rtt_ms, peer.packets_lost == null ? "–" : peer.packets_lost]) {
        row.insertCell().textContent = String(v);
      }
    }
    box.appendChild(table);
  }

  async function refresh() {
    const r = await P.api("/api/staff/status");
    if (r.status === 401) { showLogin(); return; }
    if (r.ok) render(r.data);
  }

  function showLogin() {
    if (poll) window.clearInterval(poll);
    poll = null;
    $("desk").hidden = true;
    $("login-section").hidden = false;
  }

  async function showDesk() {
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
        P.announce(res.ok ? t("staff.done") : P.errorText(res.data), !res.ok);
      });
      box.appendChild(b);
    }
  }

  async function post(path, body) {
    const r = await P.api(path, body || {});
    if (r.status === 401) { showLogin(); return r; }
    P.announce(r.ok ? t("staff.done") : P.errorText(r.data), !r.ok);
    refresh();
    return r;
  }

  async function init() {
    P.initPrefs();
    window.I18N.onChange(() => { if (lastStatus) render(lastStatus); loadPatrols(); });
    $("login-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const r = await P.api("/api/staff/login", { password: $("password").value });
      $("password").value = "";
      if (!r.ok) { P.announce(P.errorText(r.data), true); return; }
      P.announce(t("staff.logged_in"));
      await showDesk();
    });
    $("logout").addEventListener("click", async () => { await P.api("/api/staff/logout", {}); showLogin(); });
    $("estop-on").addEventListener("click", () => post("/api/staff/estop", { on: true }));
    $("estop-off").addEventListener("click", () => post("/api/staff/estop", { on: false }));
    $("end-pilot").addEventListener("click", () => post("/api/staff/end_pilot"));
    $("takeover").addEventListener("click", async () => {
      const r = await post("/api/staff/takeover");
      if (r.ok) window.open("/pilot/", "_blank", "noopener");
    });
    $("revoke").addEventListener("click", () => { post("/api/staff/codes/revoke"); $("new-code").hidden = true; });
    $("patrol-stop").addEventListener("click", () => post("/api/patrols/stop"));
    $("code-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const role = document.querySelector('input[name="role"]:checked').value;
      const r = await P.api("/api/staff/codes", { role, minutes: Number($("minutes").value) });
      if (!r.ok) { P.announce(P.errorText(r.data), true); return; }
      const grouped = r.data.code.slice(0, 4) + " " + r.data.code.slice(4);
      $("code-text").textContent = t("staff.new_code", { code: grouped });
      $("code-text").dataset.code = r.data.code;
      $("qr").innerHTML = r.data.qr_svg; // server-made SVG (segno)
      $("code-link").href = r.data.link;
      $("code-link").textContent = r.data.link;
      $("new-code").hidden = false;
      refresh();
    });
    $("watch").addEventListener("click", async () => {
      if (conn) return;
      $("video-wrap").hidden = false;
      try { conn = await P.connectRobot({ video: $("video"), sendAudio: false }); }
      catch (e) { P.announce(P.errorText(e.data || { message: String(e) }), true); }
    });
    const r = await P.api("/api/staff/status");
    if (r.ok) await showDesk(); else showLogin();
    window.passeurStaff = { refresh };
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
