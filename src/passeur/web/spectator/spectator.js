/* Spectator page: enter a watch-only code, see and hear the robot. No driving controls; the
 * mute button mutes this page's own playback only. The session has a time limit: a warning
 * before it ends and an "Extend" button (bounded by the server; WCAG 2.2.1). */
(function () {
  "use strict";
  const P = window.Passeur;
  const t = P.t;
  const $ = (id) => document.getElementById(id);
  let conn = null, config = null, expiresAt = null, warned = false, extensionsLeft = null;
  let placeNames = {}; // place id -> {"fr", "en"}: visitors read names, never internal ids

  function warningS() { return (config && config.session_warning_s) || 120; }

  function setExpiry(msg) {
    if (typeof msg.expires_in_s !== "number") return;
    expiresAt = Date.now() + msg.expires_in_s * 1000;
    if (typeof msg.extensions_left === "number") extensionsLeft = msg.extensions_left;
    showExtendable();
  }

  function showExtendable() {
    P.showExtendable("extend", "extend-none", extensionsLeft === 0);
  }

  function robotLine(robot) {
    const nav = robot.navigation || {};
    if (robot.estop) return t("status.estop");
    if (nav.state === "driving" && nav.place) {
      return t("status.going_to", { place: P.localName(placeNames[nav.place], nav.place) });
    }
    if (nav.state === "driving") return t("spectator.going_to_point");
    return "";
  }

  function onMessage(msg) {
    if (msg.type === "session_ended") stop(msg.reason === "expired" ? "expired" : "ended");
    if (msg.type === "hello") setExpiry(msg);
    if (msg.type === "status") {
      setExpiry(msg);
      if (msg.robot) $("robot-line").textContent = robotLine(msg.robot);
    }
    if (msg.type === "session") {
      setExpiry(msg);
      warned = false;
      tickClock();
      P.announce(t("session.extended", { t: P.formatTime(msg.expires_in_s) })
        + (msg.extensions_left === 0 ? " " + t("session.no_more") : ""));
    }
    if (msg.type === "error") P.announce(P.errorText({ error: msg.code }), true);
  }

  function tickClock() {
    if (!expiresAt) { $("time-left").textContent = ""; return; }
    const left = (expiresAt - Date.now()) / 1000;
    $("time-left").textContent = t("session.time_left", { t: P.formatTime(left) });
    if (left < warningS() && !warned) {
      warned = true;
      P.announce(t(extensionsLeft === 0 ? "session.ending" : "session.warning", { t: P.formatTime(left) }), true);
    }
  }

  function stop(reason) {
    if (conn) { try { conn.pc.close(); } catch (e) { /* closed */ } }
    conn = null;
    expiresAt = null;
    // "Leave" ends the session twice (the server's session_ended, then the reply): say it once.
    if ($("watch-section").hidden) return;
    // Focus inside the panel that disappears would fall back to the page: keep it at hand.
    const active = document.activeElement;
    const focusLost = !active || active === document.body || $("watch-section").contains(active);
    $("watch-section").hidden = true;
    $("code-section").hidden = false;
    if (focusLost) $("code-input").focus();
    // A spectator's page never stops the robot: say what happened to this page only.
    P.announce(t(reason === "expired" ? "spectator.expired" : "spectator.ended"), true);
  }

  // The link dropped (Wi-Fi, a restart of the robot's server): say so, and come back while the
  // session is valid, as the pilot page does, instead of a frozen picture and no word.
  function onState(s) {
    if (s === "connected") {
      P.announce(t("status.connected"));
    } else if ((s === "failed" || s === "closed" || s === "channel-closed") && conn) {
      try { conn.pc.close(); } catch (e) { /* closed */ }
      conn = null;
      P.announce(t("spectator.disconnected"), true);
      window.setTimeout(reconnect, 2000);
    }
  }

  async function reconnect() {
    if (conn || $("watch-section").hidden) return;
    let r;
    try { r = await P.api("/api/session"); } catch (e) { r = { ok: false, status: 0 }; }
    if (r.ok && r.data.role === "spectator") { setExpiry(r.data); await connect(); }
    else if (r.status === 401) stop("ended");
    else window.setTimeout(reconnect, 3000);
  }

  async function connect() {
    P.announce(t("status.connecting"));
    $("code-section").hidden = true;
    $("watch-section").hidden = false;
    try {
      conn = await P.connectRobot({ video: $("video"), sendAudio: false, onMessage, onState });
    } catch (e) {
      $("watch-section").hidden = true;
      $("code-section").hidden = false;
      $("code-input").focus();
      P.announce(P.errorText(e.data || { error: "bad_sdp" }), true);
    }
  }

  function extend() {
    if (conn && conn.channel.readyState === "open") { conn.channel.send(JSON.stringify({ type: "extend" })); return; }
    P.api("/api/session/extend", {}).then((r) => {
      if (r.ok) onMessage({ type: "session", ...r.data }); else P.announce(P.errorText(r.data), true);
    });
  }

  async function loadPlaces() {
    let r;
    try { r = await P.api("/api/places"); } catch (e) { return; }
    if (!r.ok || !Array.isArray(r.data.places)) return;
    placeNames = Object.fromEntries(r.data.places.filter((p) => p && typeof p.id === "string")
      .map((p) => [p.id, p.names]));
  }

  async function init() {
    P.initPrefs();
    loadPlaces();
    window.I18N.onChange(tickClock);
    const cfg = await P.api("/api/config");
    config = cfg.ok ? cfg.data : null;
    window.setInterval(tickClock, 1000);
    $("code-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const result = await P.api("/api/session", { code: $("code-input").value });
      if (!result.ok) { P.announce(P.errorText(result.data), true); return; }
      $("code-input").value = "";
      if (result.data.role === "pilot") { window.location.assign("/pilot/"); return; }
      setExpiry(result.data);
      await connect();
    });
    $("mute-robot").addEventListener("click", () => {
      const video = $("video");
      video.muted = !video.muted;
      $("mute-robot").setAttribute("aria-pressed", String(video.muted));
    });
    $("extend").addEventListener("click", extend);
    $("leave").addEventListener("click", async () => { await P.api("/api/session/end", {}); stop("left"); });
    const match = /code=([0-9 -]{4,16})/.exec(window.location.hash || "");
    if (match) history.replaceState(null, "", window.location.pathname);
    const existing = await P.api("/api/session");
    if (existing.ok && existing.data.role === "spectator") { setExpiry(existing.data); await connect(); }
    else if (match) {
      $("code-input").value = match[1];
      $("code-form").requestSubmit();
    }
    window.passeurSpectator = { get conn() { return conn; } };
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
