// Reader page: "Read to me", "I read", "Together", then practice of the hard words.
// Strings in fr and en. Display settings (size, spacing, font) are remembered on the device.
"use strict";
(() => {
  const STRINGS = {
    fr: {
      title: "Lire avec Passeur", language: "Langue", choose: "Choisir un livre", book: "Livre",
      reader: "Ton surnom (facultatif)", page: "Page", prev: "Page précédente",
      next: "Page suivante", modes: "Comment lire ?", read_to_me: "Lis-moi la page",
      i_read: "Je lis", together: "Ensemble", stop: "J'ai fini", display: "Affichage",
      smaller: "Texte plus petit", bigger: "Texte plus grand", spacing: "Plus d'espace",
      spacing_level: (n) => `Plus d'espace (${n}/2)`, size: (p) => `Taille ${p} %`,
      font: "Police facile à lire", contrast: "Contraste élevé", listening: "Je t'écoute. Lis la page à voix haute.",
      reading: "Je lis la page…", together_start: "J'en lis une phrase, puis tu la répètes.",
      mic_denied: "Je n'ai pas accès au micro. Vérifie l'autorisation.",
      replaced: "Un autre lecteur a commencé sur le robot : j'ai arrêté de t'écouter.",
      lost: "La connexion avec le robot est coupée : je ne t'écoute plus. Réessaie dans un moment.",
      no_model: "Je ne sais pas encore écouter dans cette langue. Essaie « Lis-moi la page ».",
      result: (r) => `Bravo ! ${r.words_correct} mots justes sur ${r.words_total}, ` +
        `${Math.round(r.wcpm)} mots par minute.` +
        (r.hard_words.length ? ` Mots à revoir : ${r.hard_words.join(", ")}.` : ""),
      unheard: "Je ne t'ai pas entendu lire. Réessaie en parlant près de la tablette.",
      not_saved: "Ta lecture n'a pas pu être enregistrée cette fois. Dis-le au ou à la bibliothécaire.",
      practice_start: "On s'entraîne sur les mots difficiles", practice_title: "On s'entraîne",
      practice_next: "Mot suivant", practice_stop: "Arrêter",
      practice_listen: "Écoute le mot, puis dis-le à ton tour.",
      practice_ok: "Bravo, c'est ça !", practice_retry: "Pas encore : on le reverra une autre fois.",
      practice_done: (ok, n) => `Entraînement fini : ${ok} mot${ok > 1 ? "s" : ""} réussi${ok > 1 ? "s" : ""} sur ${n}.`,
      done: "Fini.", error: "Problème : ",
      // The server explains its errors in English, for the logs: the child reads these.
      error_missing: "je ne trouve pas ce livre, cette page ou cette lecture. Choisis à nouveau.",
      error_too_long: "la lecture était trop longue pour moi.",
      error_unavailable: "je ne peux pas écouter ni enregistrer pour le moment. Dis-le au ou à la bibliothécaire.",
      error_other: "quelque chose n'a pas marché. Réessaie, ou demande au ou à la bibliothécaire.",
      error_reader_name: "ton surnom ne peut avoir que des lettres, des chiffres, des espaces, " +
        "« . », « - » ou « _ ». Change-le, ou laisse-le vide.",
      error_busy: "je suis déjà en train de lire à voix haute. Attends que j'aie fini, puis réessaie.",
      error_full: "d'autres enfants lisent avec moi en ce moment. Réessaie dans un petit moment.",
    },
    en: {
      title: "Read with Passeur", language: "Language", choose: "Choose a book", book: "Book",
      reader: "Your nickname (optional)", page: "Page", prev: "Previous page",
      next: "Next page", modes: "How shall we read?", read_to_me: "Read to me",
      i_read: "I read", together: "Together", stop: "I'm done", display: "Display",
      smaller: "Smaller text", bigger: "Bigger text", spacing: "More space",
      spacing_level: (n) => `More space (${n}/2)`, size: (p) => `Size ${p} %`,
      font: "Easy-to-read font", contrast: "High contrast", listening: "I'm listening. Read the page aloud.",
      reading: "I'm reading the page…", together_start: "I read a sentence, then you repeat it.",
      mic_denied: "I cannot use the microphone. Please check the permission.",
      replaced: "Another reader started on the robot, so I stopped listening.",
      lost: "The connection to the robot was lost: I am not listening any more. Try again in a moment.",
      no_model: "I cannot listen in this language yet. Try \"Read to me\".",
      result: (r) => `Well done! ${r.words_correct} of ${r.words_total} words right, ` +
        `${Math.round(r.wcpm)} words per minute.` +
        (r.hard_words.length ? ` Words to practise: ${r.hard_words.join(", ")}.` : ""),
      unheard: "I did not hear you read. Try again, speaking close to the tablet.",
      not_saved: "Your reading could not be saved this time. Please tell the librarian.",
      practice_start: "Practise the hard words", practice_title: "Let's practise",
      practice_next: "Next word", practice_stop: "Stop",
      practice_listen: "Listen to the word, then say it yourself.",
      practice_ok: "Yes, that's it!", practice_retry: "Not yet: we'll try it again another time.",
      practice_done: (ok, n) => `Practice done: ${ok} of ${n} word${n > 1 ? "s" : ""} right.`,
      done: "Done.", error: "Problem: ",
      error_missing: "I cannot find this book, page or reading. Please choose again.",
      error_too_long: "the reading was too long for me.",
      error_unavailable: "I cannot listen or save right now. Please tell the librarian.",
      error_other: "something went wrong. Try again, or ask the librarian.",
      error_reader_name: "your nickname can only have letters, digits, spaces, \".\", \"-\" " +
        "or \"_\". Change it, or leave it empty.",
      error_busy: "I am already reading aloud. Wait until I have finished, then try again.",
      error_full: "other children are reading with me right now. Try again in a little while.",
    },
  };
  const DYS_FONT = '"Passeur OpenDyslexic"';
  const PRACTICE_LISTEN_MS = 9000;
  const $ = (id) => document.getElementById(id);
  const state = { ui: "fr", books: [], book: null, page: 1, pages: 1, data: null,
    session: null, ws: null, pc: null, stream: null, size: 2.0, spacing: 0, dys: false,
    mode: null, hard: [], practice: null };
  const voice = $("voice");
  const queue = [];
  let playing = false;
  let playback = null; // {key, notified} of the robot speech the page is playing
  window.passeurReader = state; // for tests and debugging

  function t(key) { return STRINGS[state.ui][key]; }
  /* Enables or disables a button; a focused button that disables itself ("Next page" on the
   * last page, "Bigger text" at the largest size) hands the focus to `other`, or the keyboard
   * focus would fall back to the top of the page. */
  function setDisabled(button, disabled, other) {
    if (disabled && document.activeElement === button && !other.disabled) other.focus();
    button.disabled = disabled;
  }
  /* Shows a message; a function is the message in the page's language, shown again in the
   * new language when the language changes (plain text, e.g. the robot's words, stays). */
  function show(el, text) {
    el.i18n = typeof text === "function" ? text : null;
    el.textContent = el.i18n ? el.i18n() : text;
  }
  const LOCALISED = ["status", "result-text", "result-note", "practice-status", "practice-result"];
  function setStatus(text) { show($("status"), text); }

  function applyLanguage(lang) {
    state.ui = lang;
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-i18n]").forEach((el) => {
      const s = STRINGS[lang][el.dataset.i18n];
      if (typeof s === "string") el.textContent = s;
    });
    document.querySelectorAll("button.lang").forEach((b) =>
      b.setAttribute("aria-pressed", String(b.dataset.lang === lang)));
    for (const id of LOCALISED) { const el = $(id); if (el.i18n) el.textContent = el.i18n(); }
    document.title = `Passeur – ${t("title")}`;
    try { localStorage.setItem("passeur.reader.lang", lang); } catch (e) { /* private mode */ }
    applyDisplay(false);
  }

  async function api(path, options) {
    const res = await fetch(path, options);
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      const err = new Error(body.error || res.statusText);
      err.status = res.status; err.code = body.code;
      throw err;
    }
    return body;
  }

  /* A failure in the page's language (by HTTP status), as a message for show(); the server's
   * English detail goes to the console, for whoever debugs it. */
  function problem(e) {
    if (e && e.message) console.warn("reader:", e.message);
    const status = e && e.status;
    const badName = !!(e && e.code === "reader_name");
    $("reader").setAttribute("aria-invalid", String(badName));
    if (badName) return () => t("error") + t("error_reader_name");
    if (e && e.code === "sessions_full") return () => t("error") + t("error_full");
    const key = status === 404 ? "error_missing" : status === 413 ? "error_too_long"
      : status === 429 ? "error_busy" : status === 503 ? "error_unavailable" : "error_other";
    return () => t("error") + t(key);
  }
  const post = (path, body) => api(path, { method: "POST",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });

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

  /* Shows page `page` of book `id`. The book and page the robot follows change only with the
   * text shown: a page that could not be loaded (network, unknown book) leaves both as they
   * were, says why, and puts the book list back on the book shown. */
  async function openBook(id, page) {
    await stopAll();
    let data;
    try {
      data = await api(`/api/reading/books/${encodeURIComponent(id)}/pages/${page}`);
    } catch (e) {
      if (state.book) $("book").value = state.book;
      setStatus(problem(e));
      return;
    }
    state.book = id; state.page = page;
    state.data = data; state.pages = data.pages;
    setStatus("");
    renderPage(data);
    $("page-number").textContent = `${page} / ${data.pages}`;
    setDisabled($("prev"), page <= 1, $("next"));
    setDisabled($("next"), page >= data.pages, $("prev"));
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
      // A number grouped with spaces (French "1 000") is one word: see .w.grouped.
      if (/\s/.test(span.textContent)) span.classList.add("grouped");
      el.appendChild(span);
      pos = tok.end;
    }
    if (pos < data.text.length) el.appendChild(document.createTextNode(data.text.slice(pos)));
    $("result").hidden = true;
    $("practice").hidden = true;
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
  // While the page plays robot speech on its own speaker it tells the server, which gates the
  // microphone (the robot's voice is never read as the child's) and holds other speech.
  function notifyPlayback(key, st) {
    fetch("/api/reading/playback", { method: "POST", keepalive: true,
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ audio: key, state: st }) }).catch(() => {});
  }
  function endPlayback() {
    if (playback && playback.notified) notifyPlayback(playback.key, "end");
    playback = null;
  }
  function enqueue(event) { queue.push(event); if (!playing) playNext(); }
  function playNext() {
    const ev = queue.shift();
    if (!ev) { playing = false; return; }
    playing = true;
    setStatus(ev.text);
    playAudio(ev.audio, ev.words || null, playNext);
  }
  function playAudio(key, words, done, muted = false) {
    endPlayback();
    const current = { key, notified: false };
    playback = current;
    voice.muted = muted; // "robot": the robot's speaker reads it; the page only follows
    voice.src = `/api/reading/audio/${key}.wav`;
    let raf = null;
    const tick = () => {
      if (voice.paused) return; // stopped ("I'm done", another page): highlight no more
      if (words) {
        const now = voice.currentTime;
        const w = words.find((x) => now >= x.start_s && now < x.end_s);
        if (w) highlight(w.token);
      }
      raf = requestAnimationFrame(tick);
    };
    voice.onplaying = () => {
      if (!muted && playback === current && !current.notified) {
        current.notified = true; notifyPlayback(key, "start");
      }
    };
    voice.onpause = () => { if (playback === current) endPlayback(); };
    voice.onended = voice.onerror = () => {
      cancelAnimationFrame(raf);
      if (playback === current) endPlayback();
      done && done();
    };
    voice.play().then(() => { raf = requestAnimationFrame(tick); })
      .catch(() => { if (playback === current) endPlayback(); done && done(); });
  }

  // -- sessions ------------------------------------------------------------------------------
  async function openSession(body, onEvent) {
    const s = await post("/api/reading/sessions", { book: state.book, page: state.page,
      reader: $("reader").value.trim() || null, ...body });
    state.session = s.session;
    $("reader").setAttribute("aria-invalid", "false");
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${proto}://${location.host}/api/reading/sessions/${s.session}/events`);
    state.ws = ws;
    ws.onmessage = (m) => onEvent(JSON.parse(m.data));
    // Closed by the robot or the network (not by this page): say it, do not go on "listening".
    ws.onclose = () => { if (state.ws === ws) sessionEnded("lost"); };
    await new Promise((ok) => { ws.onopen = ok; ws.addEventListener("close", ok); });
    if (state.ws !== ws) throw new Error("the robot closed the reading session");
    return s.session;
  }

  async function connectMic(sid) {
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: {
        echoCancellation: true, noiseSuppression: false, autoGainControl: true } });
    } catch (e) { return false; }
    state.stream = stream;
    const pc = new RTCPeerConnection();
    state.pc = pc;
    // The audio path to the robot broke (Wi-Fi, the robot's side closed) while the page's
    // own link still works: the robot hears nothing more. Score what it heard and say so,
    // rather than go on saying "I'm listening" to a child reading to nobody.
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "failed" && state.pc === pc && state.unsaved) microphoneLost();
    });
    stream.getAudioTracks().forEach((tr) => pc.addTrack(tr, stream));
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((ok) => {
      if (pc.iceGatheringState === "complete") return ok();
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") ok(); });
      setTimeout(ok, 3000);
    });
    const answer = await post(`/api/reading/sessions/${sid}/offer`,
      { sdp: pc.localDescription.sdp, type: "offer" });
    await pc.setRemoteDescription(answer);
    return true;
  }

  // -- modes ---------------------------------------------------------------------------------
  async function readToMe() {
    setStatus(() => t("reading"));
    // POST: it makes the robot read aloud (a page of another site cannot, see server.py).
    const sp = await post(`/api/reading/books/${encodeURIComponent(state.book)}/pages/${state.page}/speech`, {});
    playAudio(sp.audio, sp.words, () => { highlight(null); setStatus(() => t("done")); finishUi(); },
      sp.speaker === "robot");
  }

  async function listen(mode) {
    if (!state.data.can_listen) { setStatus(() => t("no_model")); finishUi(); return; }
    // Before the session opens: the robot's first words ("Your turn!") must not be replaced.
    setStatus(() => (mode === "i_read" ? t("listening") : t("together_start")));
    const sid = await openSession({ mode }, (ev) => {
      if (ev.type === "position") { markWords(ev.words); highlight(ev.token); }
      else if (ev.type === "say") { (state.said = state.said || []).push(ev); enqueue(ev); }
      else if (ev.type === "finished") showResult(ev);
      else if (ev.type === "error" && ev.code === "session_replaced") sessionEnded("replaced");
      else if (ev.type === "error") setStatus(problem(ev));
    });
    state.unsaved = true; // until "I'm done" scores and saves it
    if (!(await connectMic(sid))) {
      setStatus(() => t("mic_denied")); await endSession(); finishUi(); return;
    }
  }

  /* The session ended without this page ending it: the robot made room for another reader
   * (`replaced`: it scored and saved the reading first, its result has come) or the
   * connection was lost (`lost`). While listening, stop and say why. */
  function sessionEnded(key) {
    const active = state.unsaved || !!state.practice;
    state.ws = null; state.session = null; state.unsaved = false;
    closeMedia();
    if (!active) return;
    if (state.practice) {
      clearTimeout(state.practice.timer);
      show($("practice-status"), () => t(key));
    } else { setStatus(() => t(key)); finishUi(); }
  }

  function showResult(r) {
    if (r.wcpm === undefined) return;
    markWords(r.words || []);
    // Nothing heard (a microphone that gives nothing, or "I'm done" before reading): no
    // "Well done! 0 of 24 words right".
    show($("result-text"), () => (r.reading_time_s > 0 ? STRINGS[state.ui].result(r)
      : t("unheard")));
    // Not saved: said, but it does not stop the child (the librarian sees the error).
    $("result-note").hidden = !r.warning;
    show($("result-note"), r.warning ? () => t("not_saved") : "");
    state.hard = r.hard_words || [];
    $("practice-start").hidden = !(state.hard.length && state.data && state.data.can_listen);
    $("result").hidden = false;
  }

  async function finish() {
    const sid = state.session;
    state.unsaved = false;
    closeMedia();
    // No longer "I'm listening" (the microphone is off) nor "I'm reading the page" (stopped).
    setStatus(() => t("done"));
    if (sid) {
      try { showResult(await api(`/api/reading/sessions/${sid}/finish`, { method: "POST" })); }
      catch (e) { setStatus(problem(e)); }
    } else {
      highlight(null); // "Read to me" stopped: no word is being read any more
    }
    voice.pause();
    finishUi();
  }

  async function microphoneLost() {
    await finish();
    setStatus(() => t("lost"));
  }

  function closeMedia() {
    if (state.pc) { state.pc.close(); state.pc = null; }
    if (state.stream) { state.stream.getTracks().forEach((tr) => tr.stop()); state.stream = null; }
  }

  async function endSession() {
    closeMedia();
    if (state.ws) { state.ws.close(); state.ws = null; }
    if (state.session) {
      const url = `/api/reading/sessions/${state.session}`;
      // A reading left without "I'm done" (another page, book or mode, or the tab closed) is
      // scored and saved first, then the session ends (keepalive: sent even while unloading).
      const saving = state.unsaved
        ? fetch(`${url}/finish?quiet=1`, { method: "POST", keepalive: true }) : Promise.resolve();
      saving.catch(() => {}).finally(() =>
        fetch(url, { method: "DELETE", keepalive: true }).catch(() => {}));
      state.unsaved = false;
      state.session = null;
    }
  }

  async function stopAll() {
    await endSession();
    stopPractice(false);
    voice.pause(); queue.length = 0; playing = false;
    finishUi();
  }

  function finishUi() {
    document.querySelectorAll(".mode").forEach((b) => { b.disabled = false; b.classList.remove("active"); b.setAttribute("aria-pressed", "false"); });
    // "I'm done" disables itself: its focus goes back to the mode just used, not the page top.
    if (document.activeElement === $("stop")) ($(`mode-${state.mode}`) || $("mode-read_to_me")).focus();
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
    } catch (e) {
      // E.g. the microphone offer refused: the microphone goes off and the session ends
      // (the tablet would otherwise go on capturing, its recording indicator on).
      setStatus(problem(e)); await endSession(); finishUi();
    }
  }

  // -- practice: each hard word big; the robot says it; the child says it; the result --------
  async function startPractice() {
    await endSession();
    state.practice = { words: state.hard.slice(0, 3), i: 0, ok: 0, timer: null };
    $("result").hidden = true;
    $("practice").hidden = false;
    // The focused button was just hidden: keep the keyboard in the practice, not the page top.
    $("practice-stop").focus();
    $("practice-word").lang = state.data.lang;
    await practiseWord();
  }

  async function practiseWord() {
    const p = state.practice;
    if (!p) return;
    const word = p.words[p.i];
    $("practice-word").textContent = word;
    show($("practice-result"), ""); $("practice-result").classList.remove("ok");
    show($("practice-status"), () => t("practice_listen"));
    if (document.activeElement === $("practice-next")) $("practice-stop").focus();
    $("practice-next").disabled = true;
    let settled = false;
    const settle = async (correct) => {
      if (settled || state.practice !== p) return;
      settled = true;
      clearTimeout(p.timer);
      if (correct) p.ok += 1;
      show($("practice-result"), () => (correct ? `✓ ${t("practice_ok")}` : t("practice_retry")));
      $("practice-result").classList.toggle("ok", correct);
      (p.results = p.results || []).push({ word, correct });
      await endSession();
      $("practice-next").disabled = false;
      if (p.i + 1 >= p.words.length) {
        show($("practice-status"), () => STRINGS[state.ui].practice_done(p.ok, p.words.length));
        $("practice-next").disabled = true;
      }
      // After the last word "Next word" stays disabled: focus "Stop", the way back.
      ($("practice-next").disabled ? $("practice-stop") : $("practice-next")).focus();
    };
    try {
      const sid = await openSession({ mode: "practice", word }, (ev) => {
        if (ev.type === "say") { (state.said = state.said || []).push(ev); enqueue(ev); }
        else if (ev.type === "practice" && ev.correct) settle(true);
        else if (ev.type === "error" && ev.code === "session_replaced") sessionEnded("replaced");
        else if (ev.type === "error") show($("practice-status"), problem(ev));
      });
      if (!(await connectMic(sid))) {
        show($("practice-status"), () => t("mic_denied")); await endSession(); return;
      }
      p.timer = setTimeout(async () => {
        // Microphone off first, as "I'm done" does: the robot scores what it has (it waits
        // for the audio it holds; with the microphone still sending, that could be 30 s).
        closeMedia();
        try {
          const r = await api(`/api/reading/sessions/${sid}/finish`, { method: "POST" });
          settle(!!r.correct);
        } catch (e) { settle(false); }
      }, PRACTICE_LISTEN_MS);
    } catch (e) { show($("practice-status"), problem(e)); await endSession(); }
  }

  function stopPractice(back = true) {
    const p = state.practice;
    if (!p) return;
    clearTimeout(p.timer);
    const focused = $("practice").contains(document.activeElement);
    state.practice = null;
    $("practice").hidden = true;
    if (back) {
      endSession(); $("result").hidden = false;
      if (focused) ($("practice-start").hidden ? $(`mode-${state.mode}`) : $("practice-start")).focus();
    }
  }

  // -- display settings (remembered on this device) ------------------------------------------
  function loadDisplay() {
    try {
      const saved = JSON.parse(localStorage.getItem("passeur.reader.display") || "{}");
      if (typeof saved.size === "number") state.size = Math.min(5, Math.max(1.25, saved.size));
      if ([0, 1, 2].includes(saved.spacing)) state.spacing = saved.spacing;
      state.dys = saved.dys === true;
    } catch (e) { /* private mode or bad value: defaults */ }
  }
  function applyDisplay(save = true) {
    const root = document.documentElement.style;
    root.setProperty("--size", `${state.size}rem`);
    root.setProperty("--line", String(1.8 + state.spacing * 0.4));
    root.setProperty("--word", `${0.25 + state.spacing * 0.25}em`);
    root.setProperty("--letter", `${0.02 + state.spacing * 0.04}em`);
    document.body.classList.toggle("dys", state.dys);
    if (state.dys && document.fonts) document.fonts.load(`1em ${DYS_FONT}`).catch(() => {});
    $("font").setAttribute("aria-pressed", String(state.dys));
    $("spacing").setAttribute("aria-pressed", String(state.spacing > 0));
    $("spacing").textContent = state.spacing ? STRINGS[state.ui].spacing_level(state.spacing)
      : t("spacing");
    $("size-value").textContent = STRINGS[state.ui].size(Math.round(state.size / 2 * 100));
    setDisabled($("smaller"), state.size <= 1.25, $("bigger"));
    setDisabled($("bigger"), state.size >= 5, $("smaller"));
    if (!save) return;
    try {
      localStorage.setItem("passeur.reader.display", JSON.stringify(
        { size: state.size, spacing: state.spacing, dys: state.dys }));
    } catch (e) { /* private mode: not remembered */ }
  }

  // High contrast: the same choice, stored the same way, as on the other Passeur pages
  // (common/common.js: "passeur.contrast" = "1"/"0", class "contrast" on <html>).
  function loadContrast() {
    try { return localStorage.getItem("passeur.contrast") === "1"; } catch (e) { return false; }
  }
  function applyContrast(on, save = true) {
    document.documentElement.classList.toggle("contrast", on);
    $("contrast").setAttribute("aria-pressed", String(on));
    if (!save) return;
    try { localStorage.setItem("passeur.contrast", on ? "1" : "0"); } catch (e) { /* private mode */ }
  }

  // -- wiring --------------------------------------------------------------------------------
  $("contrast").addEventListener("click", () =>
    applyContrast(!document.documentElement.classList.contains("contrast")));
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
  $("font").addEventListener("click", () => { state.dys = !state.dys; applyDisplay(); });
  $("practice-start").addEventListener("click", () => startPractice().catch((e) => setStatus(problem(e))));
  $("practice-next").addEventListener("click", () => {
    const p = state.practice;
    if (p && p.i + 1 < p.words.length) { p.i += 1; practiseWord(); }
  });
  $("practice-stop").addEventListener("click", () => stopPractice(true));
  window.addEventListener("pagehide", () => { endPlayback(); endSession(); });

  let initial = "fr";
  try { initial = localStorage.getItem("passeur.reader.lang") || ""; } catch (e) { initial = ""; }
  if (!initial) initial = (navigator.language || "fr").startsWith("en") ? "en" : "fr";
  const params = new URLSearchParams(location.search);
  if (params.get("lang") === "en" || params.get("lang") === "fr") initial = params.get("lang");
  loadDisplay();
  applyContrast(loadContrast(), false);
  applyLanguage(initial);
  loadBooks().then(async () => {
    if (params.get("book")) { $("book").value = params.get("book"); await openBook(params.get("book"), Number(params.get("page") || 1)); }
    document.body.dataset.ready = "1";
  }).catch((e) => setStatus(problem(e)));
})();
