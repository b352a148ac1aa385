// Reader page: "Read to me", "I read", "Together". Strings in fr and en.
"use strict";
(() => {
  const STRINGS = {
    fr: {
      title: "Lire avec Passeur", language: "Langue", choose: "Choisir un livre", book: "Livre",
      reader: "Ton surnom (facultatif)", page: "Page", prev: "Page précédente",
      next: "Page suivante", modes: "Comment lire ?", read_to_me: "Lis-moi la page",
      i_read: "Je lis", together: "Ensemble", stop: "J'ai fini", display: "Affichage",
      smaller: "Texte plus petit", bigger: "Texte plus grand", spacing: "Plus d'espace",
      font: "Police facile à lire", listening: "Je t'écoute. Lis la page à voix haute.",
      reading: "Je lis la page…", together_start: "J'en lis une phrase, puis tu la répètes.",
      mic_denied: "Je n'ai pas accès au micro. Vérifie l'autorisation.",
      no_model: "Je ne sais pas encore écouter dans cette langue. Essaie « Lis-moi la page ».",
      result: (r) => `Bravo ! ${r.words_correct} mots justes sur ${r.words_total}, ` +
        `${Math.round(r.wcpm)} mots par minute.` +
        (r.hard_words.length ? ` Mots à revoir : ${r.hard_words.join(", ")}.` : ""),
      done: "Fini.", error: "Problème : ",
    },
    en: {
      title: "Read with Passeur", language: "Language", choose: "Choose a book", book: "Book",
      reader: "Your nickname (optional)", page: "Page", prev: "Previous page",
      next: "Next page", modes: "How shall we read?", read_to_me: "Read to me",
      i_read: "I read", together: "Together", stop: "I'm done", display: "Display",
      smaller: "Smaller text", bigger: "Bigger text", spacing: "More space",
      font: "Easy-to-read font", listening: "I'm listening. Read the page aloud.",
      reading: "I'm reading the page…", together_start: "I read a sentence, then you repeat it.",
      mic_denied: "I cannot use the microphone. Please check the permission.",
      no_model: "I cannot listen in this language yet. Try \"Read to me\".",
      result: (r) => `Well done! ${r.words_correct} of ${r.words_total} words right, ` +
        `${Math.round(r.wcpm)} words per minute.` +
        (r.hard_words.length ? ` Words to practise: ${r.hard_words.join(", ")}.` : ""),
      done: "Done.", error: "Problem: ",
    },
  };
  const $ = (id) => document.getElementById(id);
  const state = { ui: "fr", books: [], book: null, page: 1, pages: 1, data: null,
    session: null, ws: null, pc: null, stream: null, size: 2.0, spacing: 0, mode: null };
  const voice = $("voice");
  const queue = [];
  let playing = false;
  window.passeurReader = state; // for tests and debugging

  function t(key) { return STRINGS[state.ui][key]; }
  function setStatus(text) { $("status").textContent = text; }

  function applyLanguage(lang) {
    state.ui = lang;
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-i18n]").forEach((el) => {
      const s = STRINGS[lang][el.dataset.i18n];
      if (typeof s === "string") el.textContent = s;
    });
    document.querySelectorAll("button.lang").forEach((b) =>
      b.setAttribute("aria-pressed", String(b.dataset.lang === lang)));
    document.title = `Passeur – ${t("title")}`;
    try { localStorage.setItem("passeur.reader.lang", lang); } catch (e) { /* private mode */ }
  }

  async function api(path, options) {
    const res = await fetch(path, options);
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.error || res.statusText);
    return body;
  }

  async function loadBooks() {
    state.books = await api("/api/reading/books");
    const select = $("book");
    select.innerHTML = "";
    for (const b of state.books) {
      const o = document.createElement("option");
      o.value = b.id; o.textContent = `${b.title} (${b.lang.toUpperCase()})`; o.lang = b.lang;
      select.appendChild(o);
    }
    const preferred = state.books.find((b) => b.lang === state.ui) || state.books[0];
    if (preferred) { select.value = preferred.id; await openBook(preferred.id, 1); }
  }

  async function openBook(id, page) {
    await stopAll();
    state.book = id; state.page = page;
    const data = await api(`/api/reading/books/${encodeURIComponent(id)}/pages/${page}`);
    state.data = data; state.pages = data.pages;
    renderPage(data);
    $("page-number").textContent = `${page} / ${data.pages}`;
    $("prev").disabled = page <= 1; $("next").disabled = page >= data.pages;
  }

  function renderPage(data) {
    const el = $("page");
    el.lang = data.lang; el.innerHTML = "";
    let pos = 0;
    for (const tok of data.tokens) {
      if (tok.start > pos) el.appendChild(document.createTextNode(data.text.slice(pos, tok.start)));
      const span = document.createElement("span");
      span.className = "w"; span.id = `w${tok.i}`; span.dataset.token = tok.i;
      span.textContent = data.text.slice(tok.start, tok.end);
      el.appendChild(span);
      pos = tok.end;
    }
    if (pos < data.text.length) el.appendChild(document.createTextNode(data.text.slice(pos)));
    $("result").hidden = true;
  }

  function highlight(token) {
    document.querySelectorAll(".w.current").forEach((e) => e.classList.remove("current"));
    if (token === null || token === undefined) return;
    const el = $(`w${token}`);
    if (el) {
      el.classList.add("current");
      el.scrollIntoView({ block: "nearest", behavior: "smooth" });
    }
    state.current = token;
  }

  function markWords(words) {
    for (const w of words) {
      const el = $(`w${w.token}`);
      if (!el) continue;
      el.classList.toggle("read", w.outcome !== "omission");
      el.classList.toggle("miscue", !!w.miscue);
      el.classList.toggle("told", !!w.told);
    }
  }

  // -- robot speech, played in order; highlight words while the robot reads ------------------
  function enqueue(event) { queue.push(event); if (!playing) playNext(); }
  function playNext() {
    const ev = queue.shift();
    if (!ev) { playing = false; return; }
    playing = true;
    setStatus(ev.text);
    playAudio(ev.audio, ev.words || null, playNext);
  }
  function playAudio(key, words, done) {
    voice.src = `/api/reading/audio/${key}.wav`;
    let raf = null;
    const tick = () => {
      if (words) {
        const now = voice.currentTime;
        const w = words.find((x) => now >= x.start_s && now < x.end_s);
        if (w) highlight(w.token);
      }
      raf = requestAnimationFrame(tick);
    };
    voice.onended = voice.onerror = () => { cancelAnimationFrame(raf); done && done(); };
    voice.play().then(() => { raf = requestAnimationFrame(tick); })
      .catch(() => { done && done(); });
  }

  // -- modes ---------------------------------------------------------------------------------
  async function readToMe() {
    setStatus(t("reading"));
    const sp = await api(`/api/reading/books/${encodeURIComponent(state.book)}/pages/${state.page}/speech`);
    playAudio(sp.audio, sp.words, () => { highlight(null); setStatus(t("done")); finishUi(); });
  }

  async function listen(mode) {
    if (!state.data.can_listen) { setStatus(t("no_model")); finishUi(); return; }
    const reader = $("reader").value.trim();
    const s = await api("/api/reading/sessions", { method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ book: state.book, page: state.page, mode, reader: reader || null }) });
    state.session = s.session;
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${proto}://${location.host}/api/reading/sessions/${s.session}/events`);
    state.ws = ws;
    ws.onmessage = (m) => {
      const ev = JSON.parse(m.data);
      if (ev.type === "position") { markWords(ev.words); highlight(ev.token); }
      else if (ev.type === "say") { (state.said = state.said || []).push(ev); enqueue(ev); }
      else if (ev.type === "finished") showResult(ev);
      else if (ev.type === "error") setStatus(t("error") + ev.message);
    };
    await new Promise((ok) => { ws.onopen = ok; });
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: {
        echoCancellation: true, noiseSuppression: false, autoGainControl: true } });
    } catch (e) { setStatus(t("mic_denied")); finishUi(); return; }
    state.stream = stream;
    const pc = new RTCPeerConnection();
    state.pc = pc;
    stream.getAudioTracks().forEach((tr) => pc.addTrack(tr, stream));
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((ok) => {
      if (pc.iceGatheringState === "complete") return ok();
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") ok(); });
      setTimeout(ok, 3000);
    });
    const answer = await api(`/api/reading/sessions/${s.session}/offer`, { method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: "offer" }) });
    await pc.setRemoteDescription(answer);
    if (mode === "i_read") setStatus(t("listening"));
    else setStatus(t("together_start"));
  }

  function showResult(r) {
    if (r.wcpm === undefined) return;
    markWords(r.words || []);
    const box = $("result");
    box.textContent = STRINGS[state.ui].result(r);
    box.hidden = false;
  }

  async function finish() {
    const sid = state.session;
    closeMedia();
    if (sid) {
      try { showResult(await api(`/api/reading/sessions/${sid}/finish`, { method: "POST" })); }
      catch (e) { setStatus(t("error") + e.message); }
    }
    voice.pause();
    finishUi();
  }

  function closeMedia() {
    if (state.pc) { state.pc.close(); state.pc = null; }
    if (state.stream) { state.stream.getTracks().forEach((tr) => tr.stop()); state.stream = null; }
  }

  async function stopAll() {
    closeMedia();
    if (state.ws) { state.ws.close(); state.ws = null; }
    if (state.session) {
      fetch(`/api/reading/sessions/${state.session}`, { method: "DELETE" }).catch(() => {});
      state.session = null;
    }
    voice.pause(); queue.length = 0; playing = false;
    finishUi();
  }

  function finishUi() {
    document.querySelectorAll(".mode").forEach((b) => { b.disabled = false; b.classList.remove("active"); b.setAttribute("aria-pressed", "false"); });
    $("stop").disabled = true;
  }

  async function startMode(mode) {
    await stopAll();
    document.querySelectorAll(".w").forEach((e) => e.classList.remove("read", "miscue", "told", "current"));
    state.mode = mode;
    document.querySelectorAll(".mode").forEach((b) => {
      const on = b.dataset.mode === mode;
      b.classList.toggle("active", on); b.setAttribute("aria-pressed", String(on));
    });
    $("stop").disabled = false;
    try {
      if (mode === "read_to_me") await readToMe();
      else await listen(mode);
    } catch (e) { setStatus(t("error") + e.message); finishUi(); }
  }

  // -- display settings ----------------------------------------------------------------------
  function applyDisplay() {
    const root = document.documentElement.style;
    root.setProperty("--size", `${state.size}rem`);
    root.setProperty("--line", String(1.8 + state.spacing * 0.4));
    root.setProperty("--word", `${0.25 + state.spacing * 0.25}em`);
    root.setProperty("--letter", `${0.02 + state.spacing * 0.04}em`);
  }

  // -- wiring --------------------------------------------------------------------------------
  document.querySelectorAll("button.lang").forEach((b) =>
    b.addEventListener("click", () => applyLanguage(b.dataset.lang)));
  document.querySelectorAll(".mode").forEach((b) =>
    b.addEventListener("click", () => startMode(b.dataset.mode)));
  $("stop").addEventListener("click", finish);
  $("book").addEventListener("change", (e) => openBook(e.target.value, 1));
  $("prev").addEventListener("click", () => openBook(state.book, Math.max(1, state.page - 1)));
  $("next").addEventListener("click", () => openBook(state.book, Math.min(state.pages, state.page + 1)));
  $("bigger").addEventListener("click", () => { state.size = Math.min(5, state.size + 0.25); applyDisplay(); });
  $("smaller").addEventListener("click", () => { state.size = Math.max(1.25, state.size - 0.25); applyDisplay(); });
  $("spacing").addEventListener("click", () => { state.spacing = (state.spacing + 1) % 3; applyDisplay(); });
  $("font").addEventListener("click", (e) => {
    const on = document.body.classList.toggle("dys");
    e.currentTarget.setAttribute("aria-pressed", String(on));
  });
  window.addEventListener("pagehide", () => closeMedia());

  let initial = "fr";
  try { initial = localStorage.getItem("passeur.reader.lang") || ""; } catch (e) { initial = ""; }
  if (!initial) initial = (navigator.language || "fr").startsWith("en") ? "en" : "fr";
  const params = new URLSearchParams(location.search);
  if (params.get("lang") === "en" || params.get("lang") === "fr") initial = params.get("lang");
  applyLanguage(initial);
  applyDisplay();
  loadBooks().then(async () => {
    if (params.get("book")) { $("book").value = params.get("book"); await openBook(params.get("book"), Number(params.get("page") || 1)); }
    document.body.dataset.ready = "1";
  }).catch((e) => setStatus(t("error") + e.message));
})();
