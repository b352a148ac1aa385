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
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from passeur.reading.adaptation import SpeakerAdapter, Transform

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
                   text: str | None = None, *, adaptation: Transform | None = None
                   ) -> StreamingRecognizer:
        """A recogniser for one page. `vocabulary`: the page's words in reading order
        (lexical forms) to follow a known text; None for free recognition. `adaptation`: the
        reader's speaker transform (`adapter()`), or None; a backend that cannot apply one
        ignores it."""
        ...

    def adapter(self, lang: str) -> SpeakerAdapter | None:
        """What estimates a reader's speaker transform for `lang` (adaptation.py), or None
        when this backend or its model cannot be adapted (or adaptation is off)."""
        ...


def create_backend(name: str, settings: dict[str, Any] | None = None) -> ASRBackend:
    """'pocketsphinx' (default, English model built in) or 'vosk' (model folders from config).

    ASRSettingsError (a ValueError) for a setting the backend does not have, naming the ones
    it has, or a value it refuses."""
    import inspect

    from passeur.reading.exceptions import ASRSettingsError, ASRUnavailable

    settings = dict(settings or {})
    cls: Any = None
    if name == "pocketsphinx":
        from passeur.reading.asr_pocketsphinx import PocketsphinxBackend

        cls = PocketsphinxBackend
    elif name == "vosk":
        from passeur.reading.asr_vosk import VoskBackend

        cls = VoskBackend
    if cls is not None:
        known = {p.name for p in inspect.signature(cls).parameters.values()
                 if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ASRSettingsError(
                f"{', '.join(unknown)} {'is not a' if len(unknown) == 1 else 'are not'} {name} "
                f"setting{'' if len(unknown) == 1 else 's'}; known: {', '.join(sorted(known))}")
        try:
            backend: ASRBackend = cls(**settings)
        except ASRSettingsError:
            raise
        except (ValueError, TypeError) as exc:
            raise ASRSettingsError(str(exc)) from exc
        return backend
    raise ASRUnavailable(f"unknown ASR backend '{name}': set the reading node's 'asr_backend' "
                         "parameter to 'pocketsphinx' or 'vosk'")
