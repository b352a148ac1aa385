/* Spectator page: enter a watch-only code, see and hear the robot. No driving controls. */
(function () {
  "use strict";
  const P = window.Passeur;
  const t = P.t;
  const $ = (id) => document.getElementById(id);
  let conn = null;

  function onMessage(msg) {
    if (msg.type === "session_ended") stop("ended");
    if (msg.type === "status" && msg.robot) {
      const nav = msg.robot.navigation || {};
      $("robot-line").textContent = msg.robot.estop ? t("status.estop") : (nav.state === "driving" && nav.goal ? t("status.going_to", { place: nav.goal }) : "");
    }
  }

  function stop(reason) {
    if (conn) { try { conn.pc.close(); } catch (e) { /* closed */ } }
    conn = null;
    $("watch-section").hidden = true;
    $("code-section").hidden = false;
    P.announce(t(reason === "expired" ? "status.expired" : "status.ended"), true);
  }

  async function connect() {
    P.announce(t("status.connecting"));
    $("code-section").hidden = true;
    $("watch-section").hidden = false;
    try {
      conn = await P.connectRobot({ video: $("video"), sendAudio: false, onMessage,
        onState: (s) => { if (s === "connected") P.announce(t("status.connected")); else if (s === "failed") P.announce(t("status.disconnected"), true); } });
    } catch (e) {
      $("watch-section").hidden = true;
      $("code-section").hidden = false;
      P.announce(P.errorText(e.data || { message: String(e) }), true);
    }
  }

  async function init() {
    P.initPrefs();
    $("code-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const result = await P.api("/api/session", { code: $("code-input").value });
      if (!result.ok) { P.announce(P.errorText(result.data), true); return; }
      $("code-input").value = "";
      if (result.data.role === "pilot") { window.location.assign("/pilot/"); return; }
      await connect();
    });
    $("mute-robot").addEventListener("click", () => {
      const video = $("video");
      video.muted = !video.muted;
      $("mute-robot").setAttribute("aria-pressed", String(video.muted));
    });
    $("leave").addEventListener("click", async () => { await P.api("/api/session/end", {}); stop("left"); });
    const match = /code=([0-9 -]{4,16})/.exec(window.location.hash || "");
    if (match) history.replaceState(null, "", window.location.pathname);
    const existing = await P.api("/api/session");
    if (existing.ok && existing.data.role === "spectator") await connect();
    else if (match) {
      $("code-input").value = match[1];
      $("code-form").requestSubmit();
    }
    window.passeurSpectator = { get conn() { return conn; } };
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
