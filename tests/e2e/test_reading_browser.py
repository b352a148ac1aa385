"""End to end: Debian Chromium (Playwright) on the reader page, its microphone fed from an
espeak-ng recording (--use-file-for-fake-audio-capture), audio to the server over WebRTC.
In "I read" mode the highlight follows the reading, and a 4.5 s hesitation makes the robot say
the word (captured from the robot's synthesised speech). "Read to me" highlights each word.

The reader feature is mounted on a bare aiohttp app (the WebFeature contract), as the
telepresence server will host it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from passeur.reading.service import ReadingService, ServiceConfig
from passeur.reading.web_reader import ReaderFeature
from tests.support.reading_audio import espeak_available, reading, save
from tests.support.telepresence_browser import run_axe

pytest.importorskip("playwright")
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not (espeak_available() and Path(CHROMIUM).exists()),
                                reason="needs espeak-ng and Debian chromium")

SPOKEN = ["Tom has a small red boat.", "He takes it to the", 4.5, "pond every day.",
          "The boat can sail from one side to the other."]


class Server:
    """The reader feature on aiohttp, on its own loop thread, ICE on 127.0.0.1 only."""

    def __init__(self, db: Path, books_dir: Path | None = None) -> None:
        import aioice.ice

        self._original_hosts = aioice.ice.get_host_addresses
        aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"]
        self.service = ReadingService(ServiceConfig(progress_db=db, books_dir=books_dir))
        self.service.policy = type(self.service.policy)(stuck_s=2.5, sentence_after_s=8.0,
                                                        min_gap_s=3.0)
        self.speaking: list[bool] = []  # speech/speaking as the node would publish it
        self.service.on_speaking = self.speaking.append
        self.loop = asyncio.new_event_loop()
        self.pcs: list[Any] = []
        self._ready = threading.Event()
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(30), "server did not start"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # WebContext
    async def require_staff(self, request: web.Request) -> None:
        raise web.HTTPUnauthorized()

    def create_peer_connection(self) -> object:
        from aiortc import RTCPeerConnection

        pc = RTCPeerConnection()
        self.pcs.append(pc)
        return pc

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        ReaderFeature(self.service).setup(app, self)  # type: ignore[arg-type]
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        async def stop() -> None:
            for pc in self.pcs:
                await pc.close()
            await self.runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.service.close()
        import aioice.ice

        aioice.ice.get_host_addresses = self._original_hosts


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="passeur-reader-e2e-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def server(workdir: Path) -> Iterator[Server]:
    s = Server(workdir / "progress.sqlite3")
    yield s
    s.close()


@pytest.fixture(scope="module")
def mic_wav(workdir: Path) -> Path:
    return save(reading(SPOKEN, "en-us+f3", 130, lead_s=2.0, tail_s=6.0),
                workdir / "child.wav", rate=48000)


def launch(pw: Any, wav: Path | None, profile: Path) -> Any:
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--allow-loopback-in-peer-connection",
            "--disable-features=WebRtcHideLocalIpsWithMdns", "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream", "--autoplay-policy=no-user-gesture-required"]
    if wav is not None:
        args.append(f"--use-file-for-fake-audio-capture={wav}%noloop")
    return pw.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM,
                                                 headless=True, args=args)


def silent_wav(path: Path, seconds: int) -> Path:
    """A WAV of silence (48 kHz) for the browser's fake microphone: a page that listens and
    hears nothing."""
    from passeur.reading.audio_in import write_wav

    write_wav(path, np.zeros(48000 * seconds, np.int16), 48000)
    return path


@contextlib.contextmanager
def open_reader(server: Server, profile: Path, *, lang: str, book: str, page: int,
                wav: Path | None = None, forced_colors: bool = False) -> Iterator[Any]:
    """The reader page at that language, book and page, ready (body[data-ready='1']), in a
    Chromium with its own profile, its microphone fed from `wav` (none: the fake device);
    `forced_colors` emulates forced colours before the page loads. Closed in all cases."""
    with sync_playwright() as pw:
        ctx = launch(pw, wav, profile)
        try:
            tab = ctx.new_page()
            if forced_colors:
                tab.emulate_media(forced_colors="active")
            tab.goto(f"{server.url}/reader?lang={lang}&book={book}&page={page}")
            tab.wait_for_selector("body[data-ready='1']", timeout=30000)
            yield tab
        finally:
            ctx.close()


TRACK_HIGHLIGHT = """() => { window.__hl = []; setInterval(() => {
  const c = document.querySelector('.w.current');
  if (c) { const i = Number(c.dataset.token); const h = window.__hl;
           if (!h.length || h[h.length - 1] !== i) h.push(i); } }, 50); }"""


def test_i_read_highlight_follows_and_robot_helps(server: Server, mic_wav: Path,
                                                  workdir: Path, artifacts_dir: Path) -> None:
    with open_reader(server, workdir / "profile-i-read", wav=mic_wav,
                     lang="en", book="little-red-boat", page=1) as page:
        assert page.locator("#mode-i_read").inner_text() == "I read"
        page.evaluate(TRACK_HIGHLIGHT)
        page.click("#mode-i_read")
        # The robot says the word the child is stuck on ("pond", token 11).
        page.wait_for_function(
            "() => (window.passeurReader.said || []).some(e => e.kind === 'say_word')",
            timeout=90000)
        page.wait_for_function("() => window.__hl.length && Math.max(...window.__hl) >= 18",
                               timeout=90000)
        page.screenshot(path=str(artifacts_dir / "reader-i-read.png"))
        highlights = page.evaluate("window.__hl")
        said = page.evaluate("window.passeurReader.said")
        page.click("#stop")
        page.wait_for_selector("#result:not([hidden])", timeout=30000)
        result_text = page.inner_text("#result-text")
        # Practice the hard word: shown big, said by the robot, then the child's turn
        # (the fake microphone's file is over: "not yet").
        page.click("#practice-start")
        page.wait_for_function(
            "() => document.querySelector('#practice-word').textContent === 'pond'",
            timeout=20000)
        page.wait_for_function(
            "() => (window.passeurReader.said || []).some(e => e.kind === 'practice_model')",
            timeout=30000)
        page.wait_for_function(
            "() => document.querySelector('#practice-result').textContent !== ''",
            timeout=40000)
        practice_result = page.inner_text("#practice-result")
        word_px = page.evaluate("parseFloat(getComputedStyle("
                                "document.querySelector('#practice-word')).fontSize)")
        page_px = page.evaluate("parseFloat(getComputedStyle("
                                "document.querySelector('#page')).fontSize)")
    # The highlight moved forward through the page, word by word (never jumping back).
    assert highlights == sorted(highlights), highlights
    assert highlights[0] <= 2 and len(set(highlights)) >= 12, highlights
    help_event = next(e for e in said if e["kind"] == "say_word")
    assert "pond" in help_event["text"]
    # Captured from the TTS output: the robot's speech for that help was synthesised.
    wav = server.service.audio.get(help_event["audio"])
    assert wav is not None
    with wave.open(__import__("io").BytesIO(wav)) as w:
        assert 0.5 < w.getnframes() / w.getframerate() < 5
    assert any(s["kind"] == "say_word" and "pond" in s["text"] for s in server.service.spoken)
    assert "words right" in result_text
    assert practice_result and word_px > 1.5 * page_px
    model = next(x for x in server.service.spoken if x["kind"] == "practice_model")
    assert "pond" in model["text"]


def test_read_to_me_highlights_words_in_french(server: Server, workdir: Path) -> None:
    with open_reader(server, workdir / "profile-read-to-me",
                     lang="fr", book="le-petit-bateau-rouge", page=1) as page:
        assert page.locator("#mode-read_to_me").inner_text() == "Lis-moi la page"
        assert page.locator("html").get_attribute("lang") == "fr"
        page.evaluate(TRACK_HIGHLIGHT)
        page.click("#mode-read_to_me")
        page.wait_for_function("() => window.__hl.length >= 8", timeout=60000)
        # The page told the server it plays robot speech: microphones gated meanwhile.
        holds = server.service.floor.owners()
        assert any(o.startswith("page:a") for o in holds), holds
        assert server.service.gate.speaking and server.speaking[-1] is True
        highlights = page.evaluate("window.__hl")
        axe = run_axe(page)
        # Buttons are at least 44 px.
        sizes = page.evaluate("""() => [...document.querySelectorAll('button')]
            .filter(b => b.offsetParent).map(b => [b.offsetWidth, b.offsetHeight])""")
    assert highlights == sorted(highlights) and highlights[0] == 0
    assert all(w >= 44 and h >= 44 for w, h in sizes), sizes
    assert axe == [], axe


def computed(page: Any, selector: str, prop: str) -> str:
    return str(page.evaluate(f"getComputedStyle(document.querySelector('{selector}'))"
                             f".getPropertyValue('{prop}')"))


def test_display_options_font_size_spacing_are_real_and_remembered(server: Server,
                                                                   workdir: Path) -> None:
    loaded = ("() => [...document.fonts].some(f => f.family.replace(/[\"']/g, '') === "
              "'Passeur OpenDyslexic' && f.status === 'loaded')")
    with open_reader(server, workdir / "profile-display",
                     lang="en", book="little-red-boat", page=1) as page:
        before = {p: computed(page, "#page", p)
                  for p in ("font-family", "font-size", "word-spacing", "line-height")}
        assert "OpenDyslexic" not in before["font-family"]
        assert page.get_attribute("#font", "aria-pressed") == "false"
        # The dyslexia-friendly font: served by the robot, loaded, used by the text.
        page.click("#font")
        assert page.get_attribute("#font", "aria-pressed") == "true"
        page.wait_for_function(loaded, timeout=15000)
        assert computed(page, "#page", "font-family").startswith('"Passeur OpenDyslexic"')
        assert page.evaluate("document.fonts.check('1em \"Passeur OpenDyslexic\"')")
        # Size and spacing change the text's computed style; their state is exposed.
        page.click("#bigger")
        page.click("#bigger")
        assert float(computed(page, "#page", "font-size")[:-2]) > \
            float(before["font-size"][:-2])
        assert page.inner_text("#size-value") == "Size 125 %"
        page.click("#spacing")
        assert page.get_attribute("#spacing", "aria-pressed") == "true"
        assert float(computed(page, "#page", "word-spacing")[:-2]) > \
            float(before["word-spacing"][:-2] or 0)
        after = {p: computed(page, "#page", p) for p in before}
        # Remembered on this device.
        page.reload()
        page.wait_for_selector("body[data-ready='1']", timeout=30000)
        page.wait_for_function(loaded, timeout=15000)
        again = {p: computed(page, "#page", p) for p in before}
        pressed = [page.get_attribute(f"#{b}", "aria-pressed") for b in ("font", "spacing")]
    assert again == after and pressed == ["true", "true"]


GROUPED_NUMBER_JS = """() => { const page = document.getElementById('page');
  const word = document.getElementById('w0');
  const style = getComputedStyle(word);
  // A column just too narrow for the whole number: a space inside it would break there.
  page.style.padding = '0'; page.style.width = (0.6 * word.getBoundingClientRect().width) + 'px';
  return {text: word.textContent, lines: word.getClientRects().length,
          wordSpacing: style.wordSpacing, pageWordSpacing: getComputedStyle(page).wordSpacing}; }"""


def test_a_number_grouped_with_a_space_stays_one_word_on_the_page(workdir: Path) -> None:
    """French '1 000' (plain space) is one word, read "mille": on a narrow screen it broke
    over two lines ("1" at the end of one, "000" on the next), and with "More space" the
    word spacing pulled its digits apart, so that it looked like two numbers."""
    books = workdir / "books-numbers"
    books.mkdir()
    (books / "les-etoiles.md").write_text("---\ntitle: Les étoiles\nlanguage: fr\n---\n"
                                          "1 000 étoiles brillent.\n", encoding="utf-8")
    server = Server(workdir / "numbers.sqlite3", books)
    try:
        with open_reader(server, workdir / "profile-numbers", lang="fr", book="les-etoiles",
                         page=1) as page:
            page.click("#spacing")
            page.click("#spacing")
            got = page.evaluate(GROUPED_NUMBER_JS)
    finally:
        server.close()
    assert got["text"] == "1 000"  # the book's text, as written
    assert got["lines"] == 1, got
    assert float(got["pageWordSpacing"][:-2]) > 0 and got["wordSpacing"] in ("0px", "normal")


HIGHLIGHT_JS = """() => { const words = document.querySelectorAll('#page .w');
  words[1].classList.add('current');
  const look = (el) => { const c = getComputedStyle(el);
    return [c.backgroundColor, c.color, c.outlineStyle, c.outlineColor, c.boxShadow].join(' | '); };
  return {current: look(words[1]), other: look(words[2])}; }"""


def test_current_word_stays_visible_in_forced_colours(server: Server, workdir: Path) -> None:
    """Windows high contrast (forced colours) drops backgrounds and shadows: the word being
    read must still look different from the others."""
    with open_reader(server, workdir / "profile-forced",
                     lang="fr", book="little-red-boat", page=1, forced_colors=True) as page:
        assert page.evaluate("matchMedia('(forced-colors: active)').matches")
        looks = page.evaluate(HIGHLIGHT_JS)
    assert looks["current"] != looks["other"], looks


READ_JS = """() => { const words = document.querySelectorAll('#page .w');
  words[1].classList.add('read');
  const look = (el) => { const c = getComputedStyle(el);
    return [c.color, c.textDecorationLine, c.textDecorationStyle].join(' | '); };
  return {read: look(words[1]), other: look(words[2])}; }"""


def test_words_already_read_stay_distinct_in_forced_colours(server: Server,
                                                            workdir: Path) -> None:
    """Forced colours drop the green of the words already read: they must still differ."""
    with open_reader(server, workdir / "profile-forced-read",
                     lang="fr", book="little-red-boat", page=1, forced_colors=True) as page:
        looks = page.evaluate(READ_JS)
    assert looks["read"] != looks["other"], looks
    assert "underline" in looks["read"], looks


def test_high_contrast_like_the_other_pages_and_remembered(server: Server,
                                                           workdir: Path) -> None:
    with open_reader(server, workdir / "profile-contrast",
                     lang="fr", book="little-red-boat", page=1) as page:
        assert page.inner_text("#contrast") == "Contraste élevé"
        assert page.get_attribute("#contrast", "aria-pressed") == "false"
        page.click("#contrast")
        assert page.get_attribute("#contrast", "aria-pressed") == "true"
        # Stored as the other pages store it: one choice for every Passeur page.
        assert page.evaluate("localStorage.getItem('passeur.contrast')") == "1"
        page.click('[data-lang="en"]')
        assert page.inner_text("#contrast") == "High contrast"
        page.reload()
        page.wait_for_selector("body[data-ready='1']", timeout=30000)
        on = page.evaluate("document.documentElement.classList.contains('contrast')")
        pressed = page.get_attribute("#contrast", "aria-pressed")
        background = computed(page, "#page", "background-color")
        axe = run_axe(page)
        page.click("#contrast")
        off = page.evaluate("localStorage.getItem('passeur.contrast')")
    assert on and pressed == "true" and background == "rgb(0, 0, 0)"
    assert off == "0"
    assert axe == [], axe


def test_focus_stays_on_a_button_when_i_am_done(server: Server, workdir: Path) -> None:
    """"I'm done" disables itself: the keyboard focus must not fall back to the page top."""
    with open_reader(server, workdir / "profile-done",
                     lang="en", book="little-red-boat", page=1) as page:
        page.focus("#mode-read_to_me")
        page.keyboard.press("Enter")
        page.wait_for_function("!document.getElementById('stop').disabled")
        page.focus("#stop")
        page.keyboard.press("Enter")
        page.wait_for_function("document.getElementById('stop').disabled")
        time.sleep(0.5)
        active = page.evaluate("document.activeElement.id")
    assert active == "mode-read_to_me", active


def test_errors_are_said_in_the_page_language(server: Server, workdir: Path) -> None:
    """The server explains failures in English (for the logs); the child reads French."""
    with sync_playwright() as pw:
        ctx = launch(pw, None, workdir / "profile-errors")
        try:
            page = ctx.new_page()
            shown = {}
            for lang in ("fr", "en"):
                page.goto(f"{server.url}/reader?lang={lang}&book=no-such-book&page=1")
                page.wait_for_function(
                    "document.getElementById('status').textContent.length > 0", timeout=30000)
                shown[lang] = page.inner_text("#status")
        finally:
            ctx.close()
    assert shown["fr"].startswith("Problème : je ne trouve pas ce livre"), shown
    assert shown["en"].startswith("Problem: I cannot find this book"), shown
    assert "no-such-book" not in shown["fr"] and "unknown" not in shown["fr"].lower(), shown


if os.environ.get("PASSEUR_E2E_DEBUG"):
    print("e2e debug on")


READ_LOOK_JS = """() => { const words = document.querySelectorAll('#page .w');
  const box = (el) => { const r = el.getBoundingClientRect();
    return [r.left, r.top, r.width, r.height].join(','); };
  const page = () => Array.from(words).map(box).join(';');
  const before = page();
  words[1].classList.add('read');
  const after = page();
  const look = (el) => { const c = getComputedStyle(el);
    return [c.textDecorationLine, c.textDecorationStyle, c.fontWeight, c.fontStyle,
            c.borderBottomStyle].join(' | '); };
  return {read: look(words[1]), other: look(words[2]), moved: before !== after}; }"""


@pytest.mark.parametrize("contrast", [False, True])
def test_words_already_read_differ_by_more_than_colour(server: Server, workdir: Path,
                                                       contrast: bool) -> None:
    """Outside forced colours a word already read was only green (WCAG 1.4.1): it must differ
    in something other than colour, without moving any word (a child is reading it)."""
    with open_reader(server, workdir / f"profile-read-cue-{contrast}",
                     lang="fr", book="little-red-boat", page=1) as page:
        assert not page.evaluate("matchMedia('(forced-colors: active)').matches")
        if contrast:
            page.click("#contrast")
        looks = page.evaluate(READ_LOOK_JS)
    assert looks["read"] != looks["other"], looks
    assert "underline" in looks["read"], looks
    assert not looks["moved"], looks


def test_messages_follow_a_language_change_and_listening_ends_with_i_am_done(
        server: Server, workdir: Path) -> None:
    """The result and the status were written once, in the language of that moment: after
    "Français" the score stayed English, and "I'm listening" stayed up after "I'm done"."""
    wav = save(reading(["Tom has a small red boat.", 1.0, "He takes it to the pond every day."],
                       "en-us+f3", 130, lead_s=3.0, tail_s=3.0),
               workdir / "short.wav", rate=48000)
    with open_reader(server, workdir / "profile-language-change", wav=wav,
                     lang="en", book="little-red-boat", page=1) as page:
        page.click("#mode-i_read")
        page.wait_for_function(
            "() => document.querySelectorAll('#page .w.read').length >= 4", timeout=60000)
        page.click("#stop")
        page.wait_for_selector("#result:not([hidden])", timeout=30000)
        status_after_done = page.inner_text("#status")
        result_en = page.inner_text("#result-text")
        page.click("button.lang[data-lang='fr']")
        result_fr = page.inner_text("#result-text")
        status_fr = page.inner_text("#status")
    assert "listening" not in status_after_done, status_after_done
    assert result_en.startswith("Well done!"), result_en
    assert result_fr.startswith("Bravo !") and "mots justes" in result_fr, result_fr
    assert "listening" not in status_fr and "Done" not in status_fr, status_fr


def test_together_your_turn_is_not_replaced_by_the_instructions(server: Server,
                                                                 workdir: Path) -> None:
    """The page wrote its instructions once its microphone was connected, over the robot's
    "Your turn!" that had come meanwhile (a slow connection): the child was never told it
    was their turn."""
    silent = silent_wav(workdir / "silent.wav", 12)
    with open_reader(server, workdir / "profile-together-turn", wav=silent,
                     lang="en", book="little-red-boat", page=1) as page:
        def slow_offer(route: Any) -> None:  # ICE gathering can take its full 3 s
            time.sleep(4.0)
            route.continue_()

        page.route("**/offer", slow_offer)
        page.click("#mode-together")
        page.wait_for_function(
            "() => (window.passeurReader.said || []).some(e => e.kind === 'your_turn')",
            timeout=60000)
        turn = page.evaluate("window.passeurReader.said.find("
                             "e => e.kind === 'your_turn').text")
        # Let the microphone finish connecting (the instructions were written then).
        page.wait_for_function("() => window.passeurReader.pc && "
                               "window.passeurReader.pc.remoteDescription", timeout=30000)
        page.wait_for_function(f"() => document.getElementById('status').textContent "
                               f"=== {turn!r}", timeout=15000)
        time.sleep(1.0)
        status = page.inner_text("#status")
        page.click("#stop")
    assert status == turn, status


def test_a_reading_left_for_the_next_page_is_saved(server: Server, workdir: Path) -> None:
    """A child reads page 1 in "I read", then presses "Next page" instead of "I'm done": the
    session was deleted unscored, and the librarian never saw that reading."""
    wav = save(reading(["Tom has a small red boat.", 1.0, "He takes it to the pond every day."],
                       "en-us+f3", 130, lead_s=3.0, tail_s=3.0),
               workdir / "next-page.wav", rate=48000)
    with open_reader(server, workdir / "profile-next-page", wav=wav,
                     lang="en", book="little-red-boat", page=1) as page:
        page.fill("#reader", "Capucine")
        page.click("#mode-i_read")
        page.wait_for_function(
            "() => document.querySelectorAll('#page .w.read').length >= 4", timeout=60000)
        page.click("#next")
        page.wait_for_function("document.getElementById('page-number').textContent "
                               "=== '2 / 3'", timeout=10000)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and ("Capucine" not in server.service.store(
                ).readers() or any(s.reader == "Capucine"
                                   for s in list(server.service.sessions.values()))):
            time.sleep(0.2)
    sessions = server.service.store().export("Capucine")["sessions"]
    assert [(s["book"], s["mode"], [p["page"] for p in s["pages"]]) for s in sessions] == [
        ("little-red-boat", "i_read", [1])]
    assert sessions[0]["pages"][0]["words_correct"] >= 4
    assert not any(s.reader == "Capucine" for s in list(server.service.sessions.values()))


def test_a_nickname_the_robot_cannot_keep_is_named_as_the_problem(server: Server,
                                                                   workdir: Path) -> None:
    """"Léa!" as nickname: "I read" answered "Problem: something went wrong. Try again, or ask
    the librarian."; trying again never helped, and nothing pointed at the nickname."""
    with sync_playwright() as pw:
        ctx = launch(pw, None, workdir / "profile-nickname")
        try:
            page = ctx.new_page()
            shown = {}
            for lang in ("fr", "en"):
                page.goto(f"{server.url}/reader?lang={lang}&book=little-red-boat&page=1")
                page.wait_for_selector("body[data-ready='1']", timeout=30000)
                page.fill("#reader", "Léa!")
                page.click("#mode-i_read")
                page.wait_for_function(
                    "document.getElementById('status').textContent.startsWith('Prob')",
                    timeout=30000)
                shown[lang] = (page.inner_text("#status"),
                               page.get_attribute("#reader", "aria-invalid"))
            page.fill("#reader", "Léa")
            page.click("#mode-i_read")
            page.wait_for_function("document.getElementById('reader')"
                                   ".getAttribute('aria-invalid') === 'false'", timeout=30000)
            page.click("#stop")
        finally:
            ctx.close()
    assert shown["fr"][0].startswith("Problème : ton surnom ne peut avoir que des lettres")
    assert shown["en"][0].startswith("Problem: your nickname can only have letters")
    assert shown["fr"][1] == shown["en"][1] == "true"


def test_practice_keeps_the_keyboard_focus_on_a_button(server: Server, workdir: Path) -> None:
    """Keyboard only: starting the practice hid the focused button, "Next word" disabled
    itself while listening and stayed disabled after the last word, and "Stop" hid itself:
    each time the focus fell back to the top of the page."""
    silent = silent_wav(workdir / "silent-practice.wav", 30)
    focus = "() => document.activeElement && document.activeElement.id"
    with open_reader(server, workdir / "profile-practice-focus", wav=silent,
                     lang="en", book="little-red-boat", page=1) as page:
        # As after a reading with two hard words (the result offers the practice).
        page.evaluate("""() => { window.passeurReader.hard = ['boat', 'pond'];
            document.getElementById('result').hidden = false;
            document.getElementById('practice-start').hidden = false; }""")
        page.focus("#practice-start")
        page.keyboard.press("Enter")
        page.wait_for_function("!document.getElementById('practice').hidden")
        seen = [page.evaluate(focus)]
        page.wait_for_function("!document.getElementById('practice-next').disabled",
                               timeout=40000)
        seen.append(page.evaluate(focus))
        page.keyboard.press("Enter")  # next word: "Next word" disables itself
        page.wait_for_function("document.getElementById('practice-word').textContent "
                               "=== 'pond'")
        seen.append(page.evaluate(focus))
        page.wait_for_function("document.getElementById('practice-result').textContent",
                               timeout=40000)
        page.wait_for_function(f"({focus})() === 'practice-stop'", timeout=5000)
        seen.append(page.evaluate(focus))  # after the last word
        page.keyboard.press("Enter")
        page.wait_for_function("document.getElementById('practice').hidden")
        seen.append(page.evaluate(focus))
    assert seen == ["practice-stop", "practice-next", "practice-stop", "practice-stop",
                    "practice-start"], seen


def test_buttons_that_disable_themselves_keep_the_keyboard_focus(server: Server,
                                                                  workdir: Path) -> None:
    """Keyboard only: "Next page" on reaching the last page and "Bigger text" at the largest
    size disabled themselves while focused, and the focus fell back to the top of the page."""
    focus = "document.activeElement && document.activeElement.id"
    with open_reader(server, workdir / "profile-disable-focus",
                     lang="en", book="little-red-boat", page=2) as page:
        page.focus("#next")
        page.keyboard.press("Enter")
        page.wait_for_function("document.getElementById('next').disabled")
        after_next = page.evaluate(focus)
        page.keyboard.press("Enter")  # the focus is on "Previous page" now
        page.wait_for_function("!document.getElementById('next').disabled")
        page.focus("#bigger")
        for _ in range(20):
            if page.evaluate("document.getElementById('bigger').disabled"):
                break
            page.keyboard.press("Enter")
        after_bigger = page.evaluate(focus)
        page.evaluate("localStorage.clear()")
    assert after_next == "prev", after_next
    assert after_bigger == "smaller", after_bigger


def test_a_session_ended_for_another_reader_says_so(server: Server, workdir: Path) -> None:
    """When another reader's session took its place, the page said "Problem: something went
    wrong. Try again..." and kept "I'm done" on, which then could not find the reading."""
    import json
    import urllib.request

    silent = silent_wav(workdir / "silent-replaced.wav", 20)
    with open_reader(server, workdir / "profile-replaced", wav=silent,
                     lang="fr", book="little-red-boat", page=1) as page:
        page.click("#mode-i_read")
        page.wait_for_function("() => window.passeurReader.pc && "
                               "window.passeurReader.pc.remoteDescription", timeout=30000)
        server.service.config.max_sessions = 1
        server.service.config.busy_s = 0.0  # the silent page's reading is not in use
        try:
            request = urllib.request.Request(
                f"{server.url}/api/reading/sessions", method="POST",
                data=json.dumps({"book": "little-red-boat", "mode": "i_read"}).encode(),
                headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                other = json.loads(response.read())["session"]
            page.wait_for_function("document.getElementById('stop').disabled",
                                   timeout=20000)
            status = page.inner_text("#status")
        finally:
            server.service.config.max_sessions = 4
            server.service.config.busy_s = 30.0
            server.service.close_session(other)
    assert status == "Un autre lecteur a commencé sur le robot : j'ai arrêté de t'écouter."


def test_a_reading_refused_while_other_children_read_says_so(server: Server,
                                                            workdir: Path) -> None:
    """A new reading never ends another child's reading in use (heard within busy_s): the
    robot refuses it, and the page says why in its language instead of "Problem:
    something went wrong"."""
    import json
    import urllib.request

    server.service.config.max_sessions = 1
    request = urllib.request.Request(
        f"{server.url}/api/reading/sessions", method="POST",
        data=json.dumps({"book": "little-red-boat", "mode": "i_read"}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        other = json.loads(response.read())["session"]  # another child, just started
    try:
        with open_reader(server, workdir / "profile-full", lang="fr", book="little-red-boat",
                         page=1) as page:
            page.click("#mode-i_read")
            page.wait_for_function("document.getElementById('status').textContent"
                                   ".includes('enfants')", timeout=20000)
            status = page.inner_text("#status")
            assert not page.evaluate("window.passeurReader.session")
    finally:
        server.service.config.max_sessions = 4
        server.service.close_session(other)
    assert status == ("Problème : d'autres enfants lisent avec moi en ce moment. "
                      "Réessaie dans un petit moment.")
    assert other not in server.service.sessions


def test_a_lost_connection_is_said_not_left_listening(server: Server, workdir: Path) -> None:
    """When the robot's side of the session went away (restart, network), the page went on
    saying "I'm listening. Read the page aloud." to a child reading to nobody."""
    silent = silent_wav(workdir / "silent-lost.wav", 20)
    with open_reader(server, workdir / "profile-lost", wav=silent,
                     lang="en", book="little-red-boat", page=1) as page:
        page.click("#mode-i_read")
        page.wait_for_function("() => window.passeurReader.pc && "
                               "window.passeurReader.pc.remoteDescription", timeout=30000)
        server.service.close_session(page.evaluate("window.passeurReader.session"))
        page.wait_for_function("document.getElementById('stop').disabled", timeout=20000)
        status = page.inner_text("#status")
    assert status.startswith("The connection to the robot was lost"), status


def test_a_reading_where_nothing_was_heard_is_not_praised(server: Server,
                                                           workdir: Path) -> None:
    """A microphone that gave nothing (or "I'm done" before reading) showed "Well done! 0 of
    24 words right, 0 words per minute.": the child could not tell the robot never heard."""
    silent = silent_wav(workdir / "silent-unheard.wav", 20)
    with open_reader(server, workdir / "profile-unheard", wav=silent,
                     lang="en", book="little-red-boat", page=1) as page:
        page.click("#mode-i_read")
        page.wait_for_function("() => window.passeurReader.pc && "
                               "window.passeurReader.pc.remoteDescription", timeout=30000)
        time.sleep(2.0)
        page.click("#stop")
        page.wait_for_selector("#result:not([hidden])", timeout=30000)
        shown = {"en": page.inner_text("#result-text")}
        practice_offered = page.is_visible("#practice-start")
        page.click("button.lang[data-lang='fr']")
        shown["fr"] = page.inner_text("#result-text")
        time.sleep(1.0)
        said = page.evaluate("(window.passeurReader.said || []).map(e => e.kind)")
    # Every word of the page was a "hard word" to practise, and the robot offered it.
    assert not practice_offered and "page_end" not in said, said
    assert shown == {"en": "I did not hear you read. Try again, speaking close to the tablet.",
                     "fr": "Je ne t'ai pas entendu lire. Réessaie en parlant près de la "
                           "tablette."}, shown


def test_a_refused_nickname_is_marked_in_high_contrast_too(server: Server,
                                                           workdir: Path) -> None:
    """In high contrast the white border of every field won over the red one of a refused
    nickname: the field looked like the others."""
    border = "getComputedStyle(document.getElementById('reader')).borderTopColor"
    with open_reader(server, workdir / "profile-nickname-contrast",
                     lang="en", book="little-red-boat", page=1) as page:
        page.click("#contrast")
        normal = page.evaluate(border)
        page.fill("#reader", "Léa!")
        page.click("#mode-i_read")
        page.wait_for_function("document.getElementById('reader')"
                               ".getAttribute('aria-invalid') === 'true'", timeout=30000)
        refused = page.evaluate(border)
    assert normal == "rgb(255, 255, 255)" and refused == "rgb(255, 107, 107)", (normal, refused)


def test_stopping_read_to_me_says_so(server: Server, workdir: Path) -> None:
    """"I'm done" during "Read to me" stopped the voice but the page still said "I'm reading
    the page…" with a word highlighted as if being read."""
    with open_reader(server, workdir / "profile-stop-read-to-me",
                     lang="en", book="little-red-boat", page=1) as page:
        page.click("#mode-read_to_me")
        page.wait_for_function("() => document.querySelector('.w.current')", timeout=60000)
        page.click("#stop")
        time.sleep(0.5)
        status = page.inner_text("#status")
        current = page.evaluate("document.querySelectorAll('.w.current').length")
    assert status == "Done." and current == 0, (status, current)


def test_a_practice_word_is_scored_promptly_on_a_busy_robot(server: Server,
                                                            workdir: Path) -> None:
    """After the 9 s of listening, the page asked for the score with its microphone still
    sending; the robot waits for the audio it holds, so on a robot decoding a little slower
    than real time the queue never emptied and the child waited 30 s more for "Not yet"."""
    from passeur.reading.service import LiveSession

    silent = silent_wav(workdir / "silent-busy.wav", 60)
    original = LiveSession._feed

    def slow_feed(self: Any, chunk: list[bytes], live: bool) -> bool:
        time.sleep(0.022 * len(chunk))  # 22 ms per 20 ms frame: a busy robot
        return original(self, chunk, live)

    LiveSession._feed = slow_feed  # type: ignore[method-assign]
    try:
        with open_reader(server, workdir / "profile-practice-busy", wav=silent,
                         lang="en", book="little-red-boat", page=1) as page:
            page.evaluate("""() => { window.passeurReader.hard = ['boat'];
                document.getElementById('result').hidden = false;
                document.getElementById('practice-start').hidden = false; }""")
            page.click("#practice-start")
            page.wait_for_function("() => window.passeurReader.pc && "
                                   "window.passeurReader.pc.remoteDescription",
                                   timeout=30000)
            started = time.monotonic()
            page.wait_for_function("document.getElementById('practice-result')"
                                   ".textContent", timeout=60000)
            waited_s = time.monotonic() - started
    finally:
        LiveSession._feed = original  # type: ignore[method-assign]
    assert waited_s < 30, waited_s  # was 9 s of listening + 30 s of waiting


def test_a_page_that_could_not_load_is_not_the_page_followed(server: Server,
                                                            workdir: Path) -> None:
    """'Next page' on a network blip left page 1 on screen ('1 / 3', no message) while the
    page followed was page 2: 'I read' then scored the child's reading of page 1 against
    page 2 (and saved it). A book chosen in the list likewise."""
    with open_reader(server, workdir / "profile-blip",
                     lang="en", book="little-red-boat", page=1) as page:
        first = page.inner_text("#page")
        page.route("**/api/reading/books/*/pages/*", lambda route: route.abort())
        page.click("#next")
        page.wait_for_function("document.getElementById('status').textContent.length > 0",
                               timeout=10000)
        status = page.inner_text("#status")
        followed = page.evaluate("[window.passeurReader.book, window.passeurReader.page]")
        shown = (page.inner_text("#page-number"), page.inner_text("#page"))
        other = page.evaluate("""() => Array.from(document.querySelectorAll('#book option'))
          .map((o) => o.value).find((v) => v !== 'little-red-boat')""")
        page.select_option("#book", other)
        page.wait_for_function(
            "document.getElementById('book').value === 'little-red-boat'", timeout=10000)
        after_book = page.evaluate("[window.passeurReader.book, window.passeurReader.page]")
        page.unroute("**/api/reading/books/*/pages/*")
        page.click("#next")
        page.wait_for_function("window.passeurReader.page === 2", timeout=10000)
        page.wait_for_function("document.getElementById('page-number').textContent === '2 / 3'",
                               timeout=10000)
        status_after = page.inner_text("#status")
    assert status.startswith("Problem: something went wrong"), status
    assert followed == ["little-red-boat", 1], followed
    assert shown == ("1 / 3", first)
    assert after_book == ["little-red-boat", 1], after_book
    assert status_after == ""


def test_a_refused_microphone_offer_turns_the_microphone_off(server: Server,
                                                             workdir: Path) -> None:
    """When the robot refused the page's microphone offer (a 503, a network error), the page
    said "Problem: ..." but kept the tablet's microphone capturing (the browser's recording
    indicator on) and the reading session open on the robot until another button was used."""
    with open_reader(server, workdir / "profile-offer",
                     lang="en", book="little-red-boat", page=1) as page:
        page.route("**/api/reading/sessions/*/offer", lambda route: route.fulfill(
            status=503, content_type="application/json",
            body='{"error": "too busy"}'))
        before = set(server.service.sessions)  # other tests' sessions may still be open
        page.click("#mode-i_read")
        page.wait_for_function("document.getElementById('stop').disabled", timeout=30000)
        status = page.inner_text("#status")
        page.wait_for_function("window.passeurReader.stream === null", timeout=5000)
        live = page.evaluate("window.passeurReader.pc !== null")
        deadline = time.monotonic() + 10
        while set(server.service.sessions) - before and time.monotonic() < deadline:
            time.sleep(0.1)
    assert status.startswith("Problem: I cannot listen or save right now"), status
    assert not live
    assert not set(server.service.sessions) - before, "the reading session was left open"


def test_a_broken_microphone_link_is_said_not_left_listening(server: Server,
                                                            workdir: Path) -> None:
    """When the page's audio link to the robot failed (Wi-Fi, the robot's side of the peer
    connection closed) while its other link stayed up, the page went on saying "I'm
    listening. Read the page aloud." for ever: the robot heard nothing more."""
    silent = silent_wav(workdir / "silent-broken.wav", 60)
    with open_reader(server, workdir / "profile-broken", wav=silent,
                     lang="en", book="little-red-boat", page=1) as page:
        page.click("#mode-i_read")
        page.wait_for_function("() => window.passeurReader.pc && "
                               "window.passeurReader.pc.connectionState === 'connected'",
                               timeout=30000)
        sid = page.evaluate("window.passeurReader.session")
        asyncio.run_coroutine_threadsafe(server.pcs[-1].close(), server.loop).result(10)
        page.wait_for_function("document.getElementById('stop').disabled", timeout=40000)
        status = page.inner_text("#status")
        result = page.inner_text("#result-text")
        finished = server.service.sessions[sid].result is not None
    assert status.startswith("The connection to the robot was lost"), status
    assert result.startswith("I did not hear you read"), result  # scored: nothing was heard
    assert finished
