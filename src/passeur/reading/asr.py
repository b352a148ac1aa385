"""One streaming speech-recognition interface with word timings, whatever the engine.

    backend = create_backend("pocketsphinx", {...})
    rec = backend.recognizer("en", vocabulary=page.words_lex)   # page mode (or None: free)
    for chunk in pcm16_chunks:                                  # 16 kHz mono int16 bytes
        hyp = rec.accept(chunk)                                 # words so far (partial)
    rec.endpoint()                                              # after a pause: finalise
    hyp = rec.finish()

Times are seconds from the first sample given to the recogniser. `Hypothesis.words` is the
whole stream's current best guess: finalised utterances followed by the current partial one
(which may still change: the aligner re-reads it each time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

SAMPLE_RATE = 16000  # every backend takes 16 kHz mono signed 16-bit little-endian PCM


@dataclass(frozen=True)
class RecognizedWord:
    text: str  # as the recogniser spells it
    start_s: float
    end_s: float
    final: bool = False  # belongs to a finalised utterance (will not change)
    confidence: float | None = None
    #: How well the sounds fit the word: the recogniser's acoustic log-likelihood per 10 ms
    #: frame (natural log, <= 0, relative to the engine's best-scoring sounds at each frame);
    #: None when the engine does not give it (vosk) and for words not yet final (pocketsphinx's
    #: partial scores are on another scale). Only comparable within one recording.
    acoustic_per_frame: float | None = None


@dataclass
class Hypothesis:
    words: list[RecognizedWord] = field(default_factory=list)
    audio_s: float = 0.0  # audio consumed so far

    def texts(self) -> list[str]:
        return [w.text for w in self.words]


class StreamingRecognizer(Protocol):
    sample_rate: int

    def accept(self, pcm: bytes) -> Hypothesis:
        """Feed 16-bit mono PCM at `sample_rate`; return the current hypothesis."""
        ...

    def endpoint(self) -> Hypothesis:
        """End the current utterance (the reader paused); its words become final."""
        ...

    def finish(self) -> Hypothesis:
        """End of audio: finalise and return the whole stream's words."""
        ...

    def close(self) -> None: ...


class ASRBackend(Protocol):
    name: str

    def supports(self, lang: str) -> bool: ...

    def validate(self) -> None:
        """Raise ASRUnavailable (naming the setting) if a configured model is unusable."""
        ...

    def recognizer(self, lang: str, vocabulary: Sequence[str] | None = None,
                   text: str | None = None) -> StreamingRecognizer:
        """A recogniser for one page. `vocabulary`: the page's words in reading order
        (lexical forms) to follow a known text; None for free recognition."""
        ...


def backend_setting_names(name: str) -> set[str]:
    """The settings `create_backend(name, settings)` accepts (its constructor's keywords)."""
    import inspect

    if name == "pocketsphinx":
        from passeur.reading.asr_pocketsphinx import PocketsphinxBackend as cls
    elif name == "vosk":
        from passeur.reading.asr_vosk import VoskBackend as cls  # type: ignore[assignment]
    else:
        return set()
    return {p.name for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def create_backend(name: str, settings: dict[str, Any] | None = None) -> ASRBackend:
    """'pocketsphinx' (default, English model built in) or 'vosk' (model folders from config)."""
    settings = dict(settings or {})
    if name == "pocketsphinx":
        from passeur.reading.asr_pocketsphinx import PocketsphinxBackend

        return PocketsphinxBackend(**settings)
    if name == "vosk":
        from passeur.reading.asr_vosk import VoskBackend

        return VoskBackend(**settings)
    from passeur.reading.exceptions import ASRUnavailable

    raise ASRUnavailable(f"unknown ASR backend '{name}': set the reading node's 'asr_backend' "
                         "parameter to 'pocketsphinx' or 'vosk'")
