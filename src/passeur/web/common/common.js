/* Shared helpers: preferences (contrast, large text, language), announcements, JSON fetch,
 * and the WebRTC connection to the robot (non-trickle offer/answer over HTTP POST). */
(function () {
  "use strict";
  const t = (k, v) => window.I18N.t(k, v);

  function loadPref(name) {
    try { return window.localStorage.getItem("passeur." + name) === "1"; } catch (e) { return false; }
  }
  function savePref(name, on) {
    try { window.localStorage.setItem("passeur." + name, on ? "1" : "0"); } catch (e) { /* ignore */ }
  }

  function initPrefs() {
    const root = document.documentElement;
    for (const [name, cls] of [["contrast", "contrast"], ["large", "large"]]) {
      root.classList.toggle(cls, loadPref(name));
      const button = document.querySelector(`[data-pref="${name}"]`);
      if (!button) continue;
      button.setAttribute("aria-pressed", String(loadPref(name)));
      button.addEventListener("click", () => {
        const on = !root.classList.contains(cls);
        root.classList.toggle(cls, on);
        savePref(name, on);
        button.setAttribute("aria-pressed", String(on));
      });
    }
    document.querySelectorAll("[data-lang]").forEach((b) => {
      b.addEventListener("click", () => window.I18N.setLanguage(b.dataset.lang));
    });
    window.I18N.apply();
  }

  // Two live regions: polite status and assertive alerts. Each message is added as its own
  // element, so a screen reader reads just the new one (the same text twice is read twice),
  // and a message that follows within KEEP_MS (a refused click, then a navigation failure)
  // does not wipe the one before it off the screen before anybody could read it.
  const KEEP_MS = 2000, KEEP_MAX = 3;
  function announce(text, urgent) {
    const region = document.getElementById(urgent ? "alert" : "status");
    if (!region) return;
    window.setTimeout(() => {
      const now = Date.now();
      for (const node of Array.from(region.childNodes)) {
        const at = node.nodeType === 1 ? Number(node.dataset.at || 0) : 0;
        if (now - at > KEEP_MS) node.remove();
      }
      while (region.childElementCount >= KEEP_MAX) region.firstElementChild.remove();
      const item = document.createElement("span");
      item.dataset.at = String(now);
      item.textContent = (region.childElementCount ? " " : "") + text;
      region.appendChild(item);
    }, 30);
  }

  async function api(path, body, method) {
    const options = { method: method || (body === undefined ? "GET" : "POST"), credentials: "same-origin", headers: {} };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(path, options);
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    return { ok: response.ok, status: response.status, data: data || {} };
  }

  /* `key` translated, or "" when the catalogue has no such key. */
  function tOr(key, vars) {
    const text = t(key, vars);
    return text === key ? "" : text;
  }

  /* The server sends short codes ({"error": code} over HTTP, {"code": ...} on the channel):
   * the text is always the page's language; an unknown code is shown as such, never the
   * server's English sentence on a French page. */
  function errorText(data) {
    const code = data && (data.error || data.code);
    return tOr("error." + code) || t("error.code_only", { code: code || "?" });
  }

  /* A navigation failure's reason in the page's language (reason_code from the server). */
  function navReasonText(nav) {
    const code = nav && nav.reason_code;
    if (!code) return "";
    return tOr("nav.reason." + code) || t("nav.reason.other");
  }

  function formatTime(seconds) {
    const s = Math.max(0, Math.round(seconds));
    const mm = String(Math.floor(s / 60) % 60).padStart(2, "0"), ss = String(s % 60).padStart(2, "0");
    return s >= 3600 ? Math.floor(s / 3600) + ":" + mm + ":" + ss : Math.floor(s / 60) + ":" + ss;
  }

  /* Connect to the robot: returns {pc, channel, video}. `onMessage(obj)` gets every server
   * message; `onState(state)` gets "connected"/"failed"/"closed". */
  async function connectRobot(opts) {
    try {
      return await connectOnce(opts);
    } catch (e) {
      // One retry for a refused negotiation (rare aiortc failures); access errors are final.
      if (!e.data || e.data.error !== "bad_sdp") throw e;
      await new Promise((r) => window.setTimeout(r, 500));
      return connectOnce(opts);
    }
  }

  async function connectOnce(opts) {
    const pc = new RTCPeerConnection({ iceServers: [] });
    const stream = new MediaStream();
    pc.addTransceiver("video", { direction: "recvonly" });
    let micTrack = null;
    if (opts.sendAudio && navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
      try {
        const local = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
        micTrack = local.getAudioTracks()[0] || null;
      } catch (e) { micTrack = null; }
    }
    if (micTrack) pc.addTransceiver(micTrack, { direction: "sendrecv" });
    else pc.addTransceiver("audio", { direction: "recvonly" });
    const channel = pc.createDataChannel("control", { ordered: true });
    pc.addEventListener("track", (ev) => {
      // Telepresence wants the newest picture, not a smooth one: ask for no extra buffering.
      try { if ("jitterBufferTarget" in ev.receiver) ev.receiver.jitterBufferTarget = 0; } catch (e) { /* old browser */ }
      try { if ("playoutDelayHint" in ev.receiver) ev.receiver.playoutDelayHint = 0; } catch (e) { /* old browser */ }
      stream.addTrack(ev.track);
      if (opts.video) opts.video.srcObject = stream;
    });
    pc.addEventListener("connectionstatechange", () => {
      if (opts.onState) opts.onState(pc.connectionState);
    });
    channel.addEventListener("message", (ev) => {
      let obj = null;
      try { obj = JSON.parse(ev.data); } catch (e) { return; }
      if (opts.onMessage) opts.onMessage(obj);
    });
    channel.addEventListener("close", () => { if (opts.onState) opts.onState("channel-closed"); });
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") { resolve(); return; }
      const check = () => { if (pc.iceGatheringState === "complete") { pc.removeEventListener("icegatheringstatechange", check); resolve(); } };
      pc.addEventListener("icegatheringstatechange", check);
      window.setTimeout(resolve, 3000);
    });
    // "as": "staff" (the desk's video) picks the staff session even when this browser also
    // holds a visitor cookie (after "Take over"), which would make it a second pilot.
    const answer = await api("/api/rtc/offer" + (opts.as === "staff" ? "?as=staff" : ""),
      { sdp: pc.localDescription.sdp, type: "offer" });
    if (!answer.ok) {
      pc.close();
      const err = new Error(answer.data.message || "offer refused");
      err.data = answer.data;
      throw err;
    }
    await pc.setRemoteDescription({ type: answer.data.type, sdp: answer.data.sdp });
    // A closed tab must stop the robot at once (the server's watchdog is the backstop).
    window.addEventListener("pagehide", () => {
      try { if (channel.readyState === "open") channel.send(JSON.stringify({ type: "stop" })); } catch (e) { /* closing */ }
      pc.close();
    });
    return { pc, channel, video: opts.video, micTrack, stream };
  }

  /* A session's "Extend" button (pilot, spectator, staff) once no extension is left: disabled,
   * the reason shown next to it and describing it only then (a hidden description is still
   * read), and a focus on the button that went away moved to that reason instead of falling
   * back to the top of the page. */
  function showExtendable(buttonId, reasonId, none) {
    const button = document.getElementById(buttonId), reason = document.getElementById(reasonId);
    const hadFocus = document.activeElement === button;
    button.disabled = none;
    if (none) button.setAttribute("aria-describedby", reasonId);
    else button.removeAttribute("aria-describedby");
    reason.hidden = !none;
    if (none && hadFocus) reason.focus();
  }

  /* A name given in several languages ({"fr": ..., "en": ...}: places, patrol routes) in the
   * page's language, else `fallback` (the id). */
  function localName(names, fallback) {
    if (!names || typeof names !== "object") return fallback;
    return names[window.I18N.lang] || names.en || names.fr || fallback;
  }

  window.Passeur = { initPrefs, announce, api, errorText, navReasonText, formatTime, connectRobot, t, tOr,
    showExtendable, localName };
})();
