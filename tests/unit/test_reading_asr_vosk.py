"""The vosk recogniser's life cycle, with a stand-in for vosk's KaldiRecognizer (the real one
is exercised in tests/integration/test_reading_vosk.py when a model is installed)."""

from __future__ import annotations

import json
import threading
import weakref

from passeur.reading.asr_vosk import VoskRecognizer


class FakeKaldi:
    """Answers like vosk's KaldiRecognizer; AcceptWaveform can be held to stand for a chunk
    still being decoded; `freed` is set when it is freed (vosk frees in __del__)."""

    def __init__(self, freed: threading.Event) -> None:
        self.freed = freed
        self.decoding = threading.Event()
        self.go_on = threading.Event()
        self.go_on.set()

    def AcceptWaveform(self, _pcm: bytes) -> bool:
        assert not self.freed.is_set(), "decoding with a freed recogniser"
        self.decoding.set()
        assert self.go_on.wait(10)
        return False

    def PartialResult(self) -> str:
        assert not self.freed.is_set(), "reading a freed recogniser"
        return json.dumps({"partial_result": [{"word": "tom", "start": 0.1, "end": 0.3}]})

    def FinalResult(self) -> str:
        return json.dumps({"result": []})

    def __del__(self) -> None:
        self.freed.set()


def test_close_frees_the_recogniser_at_once_and_twice_is_harmless() -> None:
    """close() only set a flag: the native decoder (tens of MB with a page's grammar) stayed
    until the garbage collector took the session objects holding it."""
    freed = threading.Event()
    kaldi = FakeKaldi(freed)
    alive = weakref.ref(kaldi)
    rec = VoskRecognizer(kaldi, ["tom"])
    del kaldi
    assert rec.accept(b"\0\0" * 320).texts() == ["tom"]
    rec.close()
    assert freed.is_set() and alive() is None and rec.closed
    rec.close()  # twice: nothing more to do
    # After close, audio is ignored (as pocketsphinx's recogniser does) and what was
    # heard stays readable.
    assert rec.accept(b"\0\0" * 320).texts() == ["tom"]
    assert rec.finish().texts() == ["tom"]


def test_closing_while_another_thread_feeds_waits_for_the_chunk_being_decoded() -> None:
    """A session closed (page left, shutdown) while its listening thread was inside vosk:
    freeing the decoder then would pull it from under the decoding."""
    freed = threading.Event()
    kaldi = FakeKaldi(freed)
    kaldi.go_on.clear()
    rec = VoskRecognizer(kaldi, None)
    decoding, go_on = kaldi.decoding, kaldi.go_on
    del kaldi
    errors: list[AssertionError] = []

    def feed() -> None:
        try:
            rec.accept(b"\0\0" * 320)
        except AssertionError as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    feeder = threading.Thread(target=feed)
    feeder.start()
    assert decoding.wait(10)
    closer = threading.Thread(target=rec.close)
    closer.start()
    closer.join(0.3)
    assert closer.is_alive() and not freed.is_set()  # waits for the chunk, frees nothing
    go_on.set()
    feeder.join(10)
    closer.join(10)
    assert not feeder.is_alive() and not closer.is_alive()
    assert errors == [] and freed.is_set() and rec.closed
