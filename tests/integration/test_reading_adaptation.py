"""Speaker adaptation for real: espeak-ng speech aligned by pocketsphinx, the transform
estimated from it, applied by pocketsphinx, and the reading service keeping a reader's
statistics from one page to the next."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from passeur.reading.adaptation import MIN_FRAMES, AdaptationStats, model_key, reader_transform
from passeur.reading.asr import create_backend
from passeur.reading.audio_in import frames
from passeur.reading.books import Library
from passeur.reading.exceptions import ASRSettingsError
from passeur.reading.service import ReadingService, ServiceConfig
from passeur.reading.session import read_pcm
from tests.support.reading_audio import espeak_available, reading

pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng not installed")

S1 = "Tom has a small red boat."
S2 = "He takes it to the pond every day."
S3 = "The boat can sail from one side to the other."
#: other sentences, in the same voice, to adapt from (not the page that is then read)
TRAIN = ["After lunch the goat washed a quiet book.",
         "The yellow bird carried the book to the river.",
         "One morning Anna and the dog walked to the market.",
         "The busy frog found a brown basket in the garden."]


def words(text: str) -> list[str]:
    return [w.strip(".,").lower() for w in text.split()]


@pytest.fixture(scope="module")
def backend():  # type: ignore[no-untyped-def]
    return create_backend("pocketsphinx")


@pytest.fixture(scope="module")
def adapter(backend):  # type: ignore[no-untyped-def]
    found = backend.adapter("en")
    assert found is not None, "the shipped en-us model should be adaptable"
    return found


@pytest.fixture(scope="module")
def page():  # type: ignore[no-untyped-def]
    return Library().get("little-red-boat").page(1)


def stats_of(adapter, voice: str, rate: int) -> AdaptationStats:  # type: ignore[no-untyped-def]
    total = adapter.empty()
    for text in TRAIN:
        total = total + adapter.accumulate(reading([text], voice, rate), words(text))
    return total


def test_the_shipped_model_is_read(adapter) -> None:  # type: ignore[no-untyped-def]
    assert adapter.shape == (3, 13)
    assert adapter.means.shape == (42, 3, 128, 13)
    assert "AH" in adapter.codebook and "SIL" in adapter.codebook
    # Mixture weights, as read from the compressed sendump, sum to about 1 per senone.
    sums = np.exp(adapter.log_weights).sum(axis=1)
    assert np.all(np.abs(sums - 1.0) < 0.15)


def test_a_readers_transform_fits_their_voice_better(adapter, backend, page  # type: ignore[no-untyped-def]
                                                      ) -> None:
    own = stats_of(adapter, "en-us+f4", 145)
    assert own.frames >= MIN_FRAMES
    transform = reader_transform(own)
    assert transform is not None
    assert np.all(np.isfinite(transform.a)) and not np.allclose(transform.a, np.eye(13))
    # Held out: the page itself, never seen by the estimate.
    pcm = reading([S1, S2, S3], "en-us+f4", 145)
    said = words(f"{S1} {S2} {S3}")
    shipped = adapter.fit(pcm, said)
    adapted = adapter.fit(pcm, said, transform)
    assert shipped is not None and adapted is not None
    assert adapted > shipped + 1.0, (shipped, adapted)
    # It is this reader's: another voice's transform fits this voice less well.
    other = reader_transform(stats_of(adapter, "en-us+m3", 120))
    other_fit = adapter.fit(pcm, said, other)
    assert other_fit is not None and adapted > other_fit, (adapted, other_fit)
    # pocketsphinx decodes with it, and the page is still followed word for word.
    plain = read_pcm(page, pcm, backend)
    result = read_pcm(page, pcm, backend, adaptation=transform)
    correct = sum(w.outcome == "correct" for w in result.state.words)
    assert correct >= sum(w.outcome == "correct" for w in plain.state.words)
    assert correct >= len(result.state.words) - 1
    assert result.heard[:3] == ["tom", "has", "a"]


def test_the_transform_file_lives_as_long_as_its_recogniser(adapter, backend, page  # type: ignore[no-untyped-def]
                                                            ) -> None:
    transform = reader_transform(stats_of(adapter, "en-us", 150))
    rec = backend.recognizer("en", [w.lex for w in page.words], page.text,
                             adaptation=transform)
    path = Path(rec._decoder.config["mllr"])
    assert path.is_file() and path.read_text().startswith("1\n3\n13\n")
    rec.close()
    assert not path.exists()
    plain = backend.recognizer("en", [w.lex for w in page.words], page.text)
    assert plain._decoder.config["mllr"] is None
    plain.close()


def test_nothing_to_align_gives_no_statistics(adapter) -> None:  # type: ignore[no-untyped-def]
    speech = reading([S1], "en-us", 140)
    assert adapter.accumulate(speech, []).frames == 0
    assert adapter.accumulate(speech[:4000], words(S1)).frames == 0  # a quarter second
    assert adapter.fit(speech, []) is None


def test_adaptation_can_be_turned_off_and_is_checked() -> None:
    assert create_backend("pocketsphinx", {"speaker_adaptation": False}).adapter("en") is None
    with pytest.raises(ASRSettingsError, match="speaker_adaptation must be true or false"):
        create_backend("pocketsphinx", {"speaker_adaptation": "yes"})


def _read_page(service: ReadingService, pcm: np.ndarray, reader: str | None):  # type: ignore[no-untyped-def]
    session = service.open_session("little-red-boat", 1, "i_read", reader)
    decoder_mllr = session._session.recognizer._decoder.config["mllr"]
    for frame in frames(pcm):
        session.push_frame(frame, live=False)
    mark = session.audio_mark()
    deadline = time.monotonic() + 120
    while not session.decoded(mark) and time.monotonic() < deadline:
        time.sleep(0.05)
    done = session.finish(announce=False)
    service.close_session(session.id)
    return done, decoder_mllr


def _wait_for(condition, timeout_s: float = 120.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_a_readers_saved_pages_adapt_their_next_ones(tmp_path: Path) -> None:
    service = ReadingService(ServiceConfig(progress_db=tmp_path / "p.sqlite3"))
    try:
        pcm = reading([S1, S2, S3], "en-us+f4", 145)
        adapter = service.backend().adapter("en")
        assert adapter is not None
        model = model_key("en", adapter)
        assert model.startswith("en:en-us-") and "/" not in model  # by content, not path
        store = service.store()
        done, mllr = _read_page(service, pcm, "Zoé")
        assert done["saved"] and mllr is None  # nothing known of Zoé yet
        assert _wait_for(lambda: store.adaptation("Zoé", model) is not None)
        first = AdaptationStats.from_bytes(store.adaptation("Zoé", model) or b"")
        assert first.frames >= MIN_FRAMES
        assert service.reader_transform("Zoé", "en") is not None
        done, mllr = _read_page(service, pcm, "Zoé")
        assert done["saved"] and mllr is not None  # decoded with Zoé's transform
        assert done["words_correct"] >= done["words_total"] - 1
        assert _wait_for(lambda: AdaptationStats.from_bytes(
            store.adaptation("Zoé", model) or b"").frames > first.frames)
        exported = store.export("Zoé")["voice_adaptation"]
        assert exported[0]["pages"] == 2
        # A page read without a name adapts nobody; deleting the reader deletes it all.
        _read_page(service, pcm, None)
        store.delete("Zoé")
        assert store.adaptation("Zoé", model) is None
        assert service.reader_transform("Zoé", "en") is None
    finally:
        service.close()


def test_with_adaptation_off_nothing_is_kept(tmp_path: Path) -> None:
    service = ReadingService(ServiceConfig(progress_db=tmp_path / "p.sqlite3",
                                           adapt_to_reader=False))
    try:
        done, mllr = _read_page(service, reading([S1, S2, S3], "en-us", 140), "Léo")
        assert done["saved"] and mllr is None
        time.sleep(1.0)
        assert service.store()._q("SELECT count(*) FROM voice_adaptation")[0][0] == 0
    finally:
        service.close()


def test_the_benchmark_adapts_a_voice_from_its_earlier_pages() -> None:
    """benchmarks/reading.py, six pages: the first voice comes back on page 6, decoded with the
    transform of its first page; the figures are on the JSON last line."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, str(root / "benchmarks" / "reading.py"), "--pages", "6",
                        "--live-pages", "0"], capture_output=True, text=True, timeout=600,
                       check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    figures = json.loads(r.stdout.strip().splitlines()[-1])
    assert figures["speaker_adaptation"] is True and figures["adapted_pages"] == 1
    assert 0.0 <= figures["detection_rate"] <= 1.0 and figures["adaptation_rtf"] > 0


def test_a_page_adapted_after_shutdown_reopens_no_store(tmp_path: Path) -> None:
    """close() waits a while for the adaptation worker, then closes the progress store; a
    page the worker takes (or finishes aligning) later must not open the store again: it
    would stay open, written after the node stopped."""
    service = ReadingService(ServiceConfig(progress_db=tmp_path / "p.sqlite3"))
    service.store().reader_id("Zoé")
    pcm = reading([S1, S2, S3], "en-us+f4", 145)
    service.close()
    assert service._store is None
    service._adapt("Zoé", "en", list(frames(pcm)), [], words(f"{S1} {S2} {S3}"))
    assert service._store is None


def test_adapting_a_page_never_freezes_the_other_threads(adapter) -> None:  # type: ignore[no-untyped-def]
    """pocketsphinx holds the GIL through each call: aligning a page in the worker thread
    froze every other thread (other children's listening, the web server) for a whole
    pass over the page, over a second for this one."""
    import threading

    text = " ".join([S1, S2, S3] * 6)
    pcm = reading([text], "en-us+f4", 145)
    gaps: list[float] = []
    stop = threading.Event()

    def tick() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            time.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        stats = adapter.accumulate(pcm, words(text))
    finally:
        stop.set()
        ticker.join()
    assert stats.frames >= MIN_FRAMES
    assert max(gaps) < 0.5, f"other threads stood still for {max(gaps):.2f} s"
