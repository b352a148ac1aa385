"""pocketsphinx 5 backend: follows a known page with an n-gram model built from its text.

The generic English language model recognises about 1 word in 5 of a child's book read aloud;
a small trigram model built from the page itself (plus a few garbage words so that misread
words are not forced onto page words) recognises 9 in 10 (measured, see ENVIRONMENT.md).
The model is written as an ARPA file and loaded through the decoder's configuration
(`add_lm_file`), so that its language weight applies to the first pass.

Words missing from the pronouncing dictionary get a pronunciation from espeak-ng (IPA mapped
to the ARPAbet phones of the en-us acoustic model).

Only English ships with pocketsphinx. There is no French pocketsphinx (or vosk) model in any
package reachable from here: French pages need a model from the user (`pocketsphinx_models`
setting: {"fr": {"hmm": DIR, "dict": FILE}}, e.g. CMUSphinx's cmusphinx-fr-ptm-5.2) or the vosk
backend with a French model; otherwise `recognizer("fr")` raises ASRUnavailable saying so.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
import tempfile
import threading
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from passeur.reading.adaptation import (
    AdaptationUnavailable,
    SpeakerAdapter,
    Transform,
    dictionary_words,
    write_mllr,
)
from passeur.reading.asr import SAMPLE_RATE, Hypothesis, RecognizedWord
from passeur.reading.exceptions import ASRUnavailable
from passeur.reading.text import FUNCTION_WORDS, TEXT_LANGUAGES, tokenize

log = logging.getLogger(__name__)

FRAME_S = 0.01  # pocketsphinx's frame rate is 100 frames/s

#: Garbage words: misread words land on these instead of being forced onto a page word.
#: Measured (benchmarks/reading.py): every garbage word added costs more false alarms (page
#: words heard as garbage) than it gains in detected insertions, so none by default.
DEFAULT_GARBAGE: dict[str, list[str]] = {"en": [], "fr": []}

#: Word fragments ("truncations", as reading tutors model false starts): for each page word of
#: 4+ phones, its first half as an extra dictionary word, so that a cut-off try ("gar...
#: garden") is heard as a try and not forced onto the whole word. Reported as the word's first
#: letters, which the aligner takes as an attempt at the word.
FRAGMENT_PREFIX = "frag__"

#: Gaussians scored per frame and codebook (pocketsphinx's `topn`, default 4). The en-us model
#: is phonetically tied (PTM): each frame's likelihood sums only its `topn` best Gaussians, and
#: with 4 the voices furthest from the model's speakers were misheard ("school" heard as "to"):
#: benchmarks/reading.py, five other espeak-ng voices (seed 3), false alarms 9.6 % -> 4.2 % and
#: one-minute WCPM error 9.5 -> 0.9 words/min with 32, for 2.8 times the decoding time
#: (real-time factor 0.035 -> 0.093 on a quiet 2-core machine, goal <= 0.1). 8 and 16 helped
#: less (docs/reading.md). A slower robot can lower it: reading parameter `asr_settings`.
DEFAULT_TOPN = 32

#: Language weight of pocketsphinx's second (flat-lexicon) pass over each utterance (the
#: first, streaming pass runs at `language_weight`, 1 by default: 3 and 6.5 named more
#: sentence-final words in the streaming result but lost miscues, docs/reading.md "Late
#: highlights"). Lower weights let fewer miscues be pulled back onto page words. pocketsphinx's
#: default, 8.5, was kept until 2026-12-07: 4 found more miscues but heard the pause between
#: two sentences as an extra "the" and raised the held-out sets' false alarms. With the page
#: model expecting an utterance to start a sentence (`sentence_starts`), 6 finds 1-4 more
#: miscues on each of five benchmark sets (14 of 400 in all) for 8 more false alarms, all on
#: one set of other voices, and a larger worst one-minute WCPM error on two sets
#: (benchmarks/reading.py; docs/reading.md, "Sentence starts and a lighter second pass").
DEFAULT_FWDFLAT_LW = 6.0

#: Near misses (`near_misses` setting: K per page word, 0 = off): for each page content word,
#: the K most frequent words of the generic English model that begin like it (same first two
#: letters and first phone, e.g. "back", "bad" for "basket"; not page or function words). A
#: child's wrong try shares the target's beginning ("ball... basket"); with only page words in
#: the model it is heard as the target itself or as an unnamed gap. Each near miss is expected
#: only just before its word (`near_miss_share` of the word's own n-gram count, shared by its
#: K near misses) and is followed by the word, so "back basket" is heard, and aligned as a try
#: (`alignment.py`: an extra word with the next word's first letter, then the word, is a
#: self-correction); elsewhere it has only a small unigram probability (NEAR_MISS_UNIGRAM).
#: Off by default: on benchmarks/reading.py (three sets of 40 pages) K 3 found 3-5 more
#: self-corrections per set but lost repetitions (the first copy of a repeated word heard as a
#: near miss), raised false alarms (seed 1: 1.8 -> 2.7 %; the other voices: 4.2 -> 4.3 %) and
#: the WCPM error, and decoded ~25 % slower; K 1 found more on one set only, K 2 and 6 raised
#: false alarms more; the share (0.01-0.3) moved little (docs/reading.md).
NEAR_MISS_UNIGRAM = 1e-4
DEFAULT_NEAR_MISSES = 0
#: Near misses are drawn from this many most frequent words (a try is a word the child knows).
NEAR_MISS_VOCABULARY = 20000
DEFAULT_NEAR_MISS_SHARE = 0.03

# espeak-ng IPA (en-us) -> CMU ARPAbet, longest symbols first.
_IPA_ARPABET = [
    ("aɪə", "AY ER"), ("aɪ", "AY"), ("aʊ", "AW"), ("eɪ", "EY"), ("oʊ", "OW"), ("ɔɪ", "OY"),
    ("ɪɹ", "IH R"), ("ɛɹ", "EH R"), ("ʊɹ", "UH R"), ("ɑːɹ", "AA R"), ("ɔːɹ", "AO R"),
    ("tʃ", "CH"), ("dʒ", "JH"), ("ɜː", "ER"), ("ɚ", "ER"), ("ɝ", "ER"),
    ("iː", "IY"), ("uː", "UW"), ("ɑː", "AA"), ("ɔː", "AO"), ("i", "IY"), ("u", "UW"),
    ("ɪ", "IH"), ("ɛ", "EH"), ("æ", "AE"), ("ʌ", "AH"), ("ə", "AH"), ("ɐ", "AH"), ("ɑ", "AA"),
    ("ɔ", "AO"), ("ʊ", "UH"), ("ɒ", "AA"), ("e", "EH"), ("o", "OW"), ("a", "AE"),
    ("p", "P"), ("b", "B"), ("t", "T"), ("d", "D"), ("k", "K"), ("ɡ", "G"), ("g", "G"),
    ("f", "F"), ("v", "V"), ("θ", "TH"), ("ð", "DH"), ("s", "S"), ("z", "Z"), ("ʃ", "SH"),
    ("ʒ", "ZH"), ("h", "HH"), ("m", "M"), ("n", "N"), ("ŋ", "NG"), ("l", "L"), ("ɹ", "R"),
    ("r", "R"), ("j", "Y"), ("w", "W"), ("ɾ", "T"), ("ʔ", "T"), ("x", "K"),
]


def ipa_to_arpabet(ipa: str) -> str:
    """Map an espeak-ng IPA string (phonemes separated by '_') to ARPAbet phones."""
    phones: list[str] = []
    for chunk in ipa.replace("ˈ", "").replace("ˌ", "").replace("ː", "ː").split("_"):
        rest = chunk.strip()
        while rest:
            for ipa_sym, arpa in _IPA_ARPABET:
                if rest.startswith(ipa_sym):
                    phones.extend(arpa.split())
                    rest = rest[len(ipa_sym):]
                    break
            else:
                rest = rest[1:]  # length marks, diacritics: no ARPAbet equivalent
    return " ".join(phones)


def espeak_pronunciation(word: str, voice: str = "en-us") -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        return ""
    result = subprocess.run([exe, "-q", "--ipa", "--sep=_", "-v", voice, word],
                            capture_output=True, text=True, timeout=10, check=False)
    return ipa_to_arpabet(result.stdout.strip()) if result.returncode == 0 else ""


def build_arpa(sequence: Sequence[str], garbage: Sequence[str], *, follow_prob: float = 0.9,
               garbage_prob: float = 0.08, fragments: dict[str, str] | None = None,
               fragment_share: float = 0.1, near_misses: dict[str, list[str]] | None = None,
               near_miss_share: float = 0.1, sentence_starts: Sequence[int] = ()) -> str:
    """A trigram ARPA model that strongly prefers the page's own word order.

    P(next page word | previous ones) gets `follow_prob`; the rest backs off to a unigram
    over the page words (re-reading, skipping) and the garbage words (`garbage_prob` of the
    unigram mass). Not a normalised estimate from counts: it is a prior that says "the child
    is reading this text", which is what makes a small decoder follow well.

    `near_misses`: page word -> words that begin like it (a try before it); each gets
    `near_miss_share` / K of the word's count wherever the word follows one or two page words,
    is followed by the word, and has only NEAR_MISS_UNIGRAM elsewhere.

    `sentence_starts`: indices in `sequence` of the words that begin a sentence (not the
    first). An utterance begins at the page's first word or at one of these, each as likely
    (readers pause at full stops, where the session also ends an utterance), with the
    trigram of the sentence's second word; any other page word may still follow <s>.
    """
    words = [w for w in sequence if w]
    page_vocab = sorted(set(words))
    garbage_vocab = sorted(set(garbage) - set(page_vocab))
    backoff = math.log10(1.0 - follow_prob)
    uni: dict[str, float] = {}
    counts = Counter(words)
    total = sum(counts.values())
    page_mass = 1.0 - (garbage_prob if garbage_vocab else 0.0)
    for w in page_vocab:
        uni[w] = math.log10(page_mass * (0.5 * counts[w] / total + 0.5 / len(page_vocab)))
    for w in garbage_vocab:
        uni[w] = math.log10(garbage_prob / len(garbage_vocab))
    near = {t: [m for m in ms if m not in page_vocab]
            for t, ms in (near_misses or {}).items() if t in page_vocab}
    for m in sorted({m for ms in near.values() for m in ms} - set(uni)):
        uni[m] = math.log10(NEAR_MISS_UNIGRAM)
    uni["</s>"] = math.log10(0.05)
    bigrams: dict[str, defaultdict[str, float]] = defaultdict(lambda: defaultdict(float))
    trigrams: dict[tuple[str, str], defaultdict[str, float]] = defaultdict(
        lambda: defaultdict(float))
    padded = ["<s>", *words, "</s>"]
    for a, b in zip(padded, padded[1:], strict=False):
        bigrams[a][b] += 1
    for a, b, c in zip(padded, padded[1:], padded[2:], strict=False):
        trigrams[(a, b)][c] += 1
    # A false start of the next word is expected where the word is (`fragment_share` of it),
    # and is followed by the word itself.
    for word, frag in (fragments or {}).items():
        for following in list(bigrams.values()):
            if following.get(word):
                following[frag] += fragment_share * following[word]
        bigrams[frag][word] += 1
    # A try that begins like the next word comes just before it, then the word. Not after <s>
    # alone (an utterance may start on any page word: those bigrams have no count).
    contexts = [*bigrams.values(), *trigrams.values()]
    for word, misses in near.items():
        for following in contexts:
            if misses and following.get(word):
                for miss in misses:
                    following[miss] += near_miss_share / len(misses) * following[word]
    for word, misses in near.items():
        for miss in misses:
            bigrams[miss][word] += 1
    # An utterance after a pause at a full stop begins the next sentence.
    for start in sentence_starts:
        if 0 < start < len(words):
            bigrams["<s>"][words[start]] += 1
            if start + 1 < len(words):
                trigrams[("<s>", words[start])][words[start + 1]] += 1
    # Utterances restart anywhere (the reader pauses mid-page): any page word may follow <s>.
    for w in page_vocab:
        bigrams["<s>"][w] += 0
    lines = ["\\data\\", f"ngram 1={len(uni) + 1}",
             f"ngram 2={sum(len(v) for v in bigrams.values())}",
             f"ngram 3={sum(len(v) for v in trigrams.values())}", "", "\\1-grams:",
             f"-99.0000\t<s>\t{backoff:.4f}"]
    for w, p in uni.items():
        suffix = f"\t{backoff:.4f}" if w in bigrams else ""
        lines.append(f"{p:.4f}\t{w}{suffix}")
    lines += ["", "\\2-grams:"]
    for a, following in bigrams.items():
        n = sum(following.values()) or 1
        for b, count in following.items():
            if a == "<s>" and count == 0:
                p = math.log10((1.0 - follow_prob) / max(len(page_vocab), 1))
            else:
                p = math.log10(follow_prob * count / n)
            bo = f"\t{backoff:.4f}" if (a, b) in trigrams else ""
            lines.append(f"{p:.4f}\t{a} {b}{bo}")
    lines += ["", "\\3-grams:"]
    for (a, b), after in trigrams.items():
        n = sum(after.values())
        for c, k in after.items():
            lines.append(f"{math.log10(follow_prob * k / n):.4f}\t{a} {b} {c}")
    lines += ["", "\\end\\", ""]
    return "\n".join(lines)


def sentence_starts(text: str | None, lang: str, words: Sequence[str]) -> list[int]:
    """Indices in `words` (the page's spoken words, as the recogniser was given them) of the
    words that begin a sentence after the first; none when `text` is not the page those words
    come from."""
    if not text or lang not in TEXT_LANGUAGES:
        return []
    page = tokenize(text, lang)
    if [w.lex.lower() for w in page.words] != list(words):
        return []
    return [k for k in range(1, len(page.words))
            if page.tokens[page.words[k].token].sentence
            != page.tokens[page.words[k - 1].token].sentence]


def acoustic_per_frame(ascore: float, n_frames: int) -> float | None:
    """Per-frame log acoustic score of a segment. pocketsphinx's Python API gives a segment's
    acoustic score as a probability (the exponential of its log score), so take the log back;
    a score that underflowed to 0 (or a degenerate segment) gives None, not -inf."""
    if n_frames <= 0 or not ascore > 0.0 or math.isinf(ascore):
        return None
    return math.log(ascore) / n_frames


class PocketsphinxRecognizer:
    sample_rate = SAMPLE_RATE

    def __init__(self, decoder: Any, lm_path: Path | None, tmpdir: tempfile.TemporaryDirectory[str]
                 | None) -> None:
        self._decoder = decoder
        self.lm_path = lm_path  # the page model (ARPA text), while the recogniser is open
        self._tmpdir = tmpdir
        self._final: list[RecognizedWord] = []
        self._partial: list[RecognizedWord] = []
        self._samples = 0
        self._utt_start_samples = 0
        self._in_utt = False
        self._closed = False
        self._since_hyp = 0

    def _words(self, final: bool) -> list[RecognizedWord]:
        offset = self._utt_start_samples / self.sample_rate
        out = []
        for seg in self._decoder.seg():
            word = seg.word
            if word.startswith(("<", "[", "+")) or word in ("<sil>",):
                continue
            if "(" in word:
                word = word[:word.index("(")]  # alternate pronunciations: "the(2)"
            if word.startswith(FRAGMENT_PREFIX):
                target = word[len(FRAGMENT_PREFIX):]
                word = target[: max(2, len(target) // 2)]
            # Posterior probability of the word in the utterance's lattice: only once the
            # utterance is final (a partial result has no lattice).
            confidence = min(1.0, max(0.0, float(seg.prob))) if final else None
            # Acoustic fit: final words only. pocketsphinx leaves a partial result's scores
            # unshifted (measured: ~1000x smaller than the same word's once final), so a
            # partial copy compared with a final one would always look like a try.
            fit = acoustic_per_frame(float(seg.ascore), seg.end_frame - seg.start_frame + 1) \
                if final else None
            out.append(RecognizedWord(word, offset + seg.start_frame * FRAME_S,
                                      offset + (seg.end_frame + 1) * FRAME_S, final=final,
                                      confidence=confidence, acoustic_per_frame=fit))
        return out

    def _hyp(self) -> Hypothesis:
        return Hypothesis(self._final + self._partial, self._samples / self.sample_rate)

    def accept(self, pcm: bytes) -> Hypothesis:
        if len(pcm) % 2:
            raise ValueError("PCM chunk must hold whole 16-bit samples")
        if self._closed:
            return self._hyp()
        if not self._in_utt:
            self._decoder.start_utt()
            self._in_utt = True
            self._utt_start_samples = self._samples
        self._decoder.process_raw(pcm, False, False)
        self._samples += len(pcm) // 2
        self._since_hyp += len(pcm) // 2
        # A partial backtrace costs more than a chunk: refresh it every 50 ms of audio.
        if self._since_hyp >= self.sample_rate // 20:
            self._since_hyp = 0
            self._partial = self._words(final=False) if self._decoder.hyp() is not None else []
        return self._hyp()

    def endpoint(self) -> Hypothesis:
        if self._in_utt:
            self._decoder.end_utt()
            self._in_utt = False
            self._final.extend(self._words(final=True) if self._decoder.hyp() is not None
                               else [])
            self._partial = []
        return self._hyp()

    def finish(self) -> Hypothesis:
        return self.endpoint()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._in_utt:
            self._in_utt = False
            try:
                self._decoder.end_utt()
            except RuntimeError:
                pass
        if self._tmpdir is not None:
            self._tmpdir.cleanup()


class PocketsphinxBackend:
    name = "pocketsphinx"

    def __init__(self, models: dict[str, dict[str, str]] | None = None,
                 garbage: dict[str, list[str]] | None = None, language_weight: float = 1.0,
                 follow_prob: float = 0.97, cmninit: str = "",
                 decoder_options: dict[str, Any] | None = None, garbage_top_n: int = 0,
                 garbage_prob: float = 0.05, fragments: bool = False,
                 fragment_prob: float = 0.05, fragment_share: float = 0.1,
                 topn: int = DEFAULT_TOPN, fwdflat_lw: float = DEFAULT_FWDFLAT_LW,
                 near_misses: int = DEFAULT_NEAR_MISSES,
                 near_miss_share: float = DEFAULT_NEAR_MISS_SHARE,
                 sentence_starts: bool = True, speaker_adaptation: bool = True) -> None:
        try:
            import pocketsphinx
        except ImportError as exc:
            raise ASRUnavailable("pocketsphinx is not installed: pip install pocketsphinx==5.1.1"
                                 ) from exc
        builtin = Path(pocketsphinx.get_model_path()) / "en-us"
        self.models: dict[str, dict[str, str]] = {
            "en": {"hmm": str(builtin / "en-us"), "dict": str(builtin / "cmudict-en-us.dict")}}
        for lang, paths in (models or {}).items():
            self.models[lang] = dict(paths)
        self.garbage = {**DEFAULT_GARBAGE, **(garbage or {})}
        self.language_weight = language_weight
        self.follow_prob = follow_prob
        # Start cepstral mean normalisation near speech values so the first words of a session
        # are not lost while the live estimate converges.
        self.cmninit = cmninit or "46.7,4.06,-4.6,13.1,-10.7,-1.8,1.3,-9.4,0.4,-5.3,4.8,-4.6,-1.6"
        self._dict_words: dict[str, set[str]] = {}
        self.decoder_options = dict(decoder_options or {})
        self.garbage_top_n = garbage_top_n
        self.garbage_prob = garbage_prob
        self.fragments = fragments
        self.fragment_prob = fragment_prob
        self.fragment_share = fragment_share
        if isinstance(topn, bool) or not isinstance(topn, int) or not 1 <= topn <= 256:
            raise ValueError(f"topn must be a whole number of Gaussians per frame, 1-256, "
                             f"got {topn!r}")
        self.topn = topn
        if isinstance(fwdflat_lw, bool) or not isinstance(fwdflat_lw, (int, float)) \
                or not 0.0 < fwdflat_lw <= 20.0:
            raise ValueError(f"fwdflat_lw must be a number in (0, 20], got {fwdflat_lw!r}")
        self.fwdflat_lw = float(fwdflat_lw)
        if isinstance(near_misses, bool) or not isinstance(near_misses, int) \
                or not 0 <= near_misses <= 20:
            raise ValueError(f"near_misses must be a whole number of words per page word, 0-20 "
                             f"(0 = off), got {near_misses!r}")
        self.near_misses = near_misses
        if isinstance(near_miss_share, bool) or not isinstance(near_miss_share, (int, float)) \
                or not 0.0 < near_miss_share <= 1.0:
            raise ValueError(f"near_miss_share must be a number in (0, 1], got "
                             f"{near_miss_share!r}")
        self.near_miss_share = float(near_miss_share)
        if not isinstance(sentence_starts, bool):
            raise ValueError(f"sentence_starts must be true or false, got {sentence_starts!r}")
        self.sentence_starts = sentence_starts
        if not isinstance(speaker_adaptation, bool):
            raise ValueError(f"speaker_adaptation must be true or false, got "
                             f"{speaker_adaptation!r}")
        self.speaker_adaptation = speaker_adaptation
        self._adapters: dict[str, SpeakerAdapter | None] = {}
        self._adapters_lock = threading.Lock()
        for key, name in (("topn", "topn"), ("fwdflatlw", "fwdflat_lw")):
            if key in self.decoder_options:
                raise ValueError(f"set '{name}' as a setting of its own, not in decoder_options "
                                 f"(where it would escape the range check)")
        self._ranked: dict[str, list[str]] = {}
        self._by_onset: dict[str, dict[str, list[str]]] = {}
        self._prons: dict[str, dict[str, list[str]]] = {}

    def supports(self, lang: str) -> bool:
        return lang in self.models

    def validate(self) -> None:
        """Check every configured model's files now, so a wrong path fails at start-up."""
        for lang in self.models:
            self._model(lang)

    def _model(self, lang: str) -> dict[str, str]:
        if lang not in self.models:
            if lang == "fr":
                raise ASRUnavailable(
                    "no French speech model for pocketsphinx: none ships with it, and none "
                    "exists in any package reachable here. Either give one in the reading "
                    "node's 'pocketsphinx_models' setting ({\"fr\": {\"hmm\": DIR, \"dict\": "
                    "FILE}}, e.g. cmusphinx-fr-ptm-5.2 from https://cmusphinx.github.io), or "
                    "use asr_backend 'vosk' with 'vosk_models' {\"fr\": DIR} "
                    "(vosk-model-small-fr from https://alphacephei.com/vosk/models). "
                    "'Read to me' works in French without a model.")
            raise ASRUnavailable(f"no pocketsphinx model for language '{lang}'")
        model = self.models[lang]
        for key in ("hmm", "dict"):
            if not Path(model.get(key, "")).exists():
                raise ASRUnavailable(f"pocketsphinx_models.{lang}.{key}: '{model.get(key)}' "
                                     "does not exist")
        return model

    def _ranked_words(self, lang: str, model: dict[str, str]) -> list[str]:
        """The dictionary's words (letters only, 2+), most likely first in the model's generic
        LM; empty without one. Ranked once per language (~0.5 s)."""
        if lang not in self._ranked:
            from pocketsphinx import NGramModel

            hmm = Path(model["hmm"])
            generic = Path(model["lm"]) if "lm" in model else hmm.parent / f"{hmm.name}.lm.bin"
            if not generic.exists():
                self._ranked[lang] = []
                return []
            lm = NGramModel.readfile(os.fspath(generic))
            words = [w for w in self._dictionary(model["dict"])
                     if "(" not in w and w.isalpha() and len(w) > 1]
            self._ranked[lang] = sorted(words, key=lambda w: (-lm.prob([w]), w))
        return self._ranked[lang]

    def _frequent_words(self, lang: str, model: dict[str, str]) -> list[str]:
        """The `garbage_top_n` most likely single words of the model's generic LM: where a
        misread or added word lands when it is not a page word (so it is not forced onto one)."""
        if self.garbage_top_n <= 0:
            return []
        return self._ranked_words(lang, model)[: self.garbage_top_n]

    def _near_misses(self, lang: str, model: dict[str, str], words: Sequence[str]
                     ) -> dict[str, list[str]]:
        """Page content word -> the `near_misses` most frequent generic words that begin like
        it: same first two letters and first phone, 3+ letters, not a page or function word,
        not the word's beginning or the word with an ending."""
        if self.near_misses <= 0:
            return {}
        pronunciations = self._pronunciations(model["dict"])
        functions = FUNCTION_WORDS.get(lang, set())
        page = set(words)

        def phones(word: str) -> list[str]:
            lines = pronunciations.get(word)
            return lines[0].split()[1:] if lines else []

        if lang not in self._by_onset:
            by_onset: dict[str, list[str]] = defaultdict(list)
            for cand in self._ranked_words(lang, model)[:NEAR_MISS_VOCABULARY]:
                if len(cand) >= 3 and cand not in functions:
                    by_onset[cand[:2]].append(cand)
            self._by_onset[lang] = dict(by_onset)
        out: dict[str, list[str]] = {}
        for target in sorted(page - functions):
            sounds = phones(target)
            if len(target) < 3 or not sounds:
                continue
            # Not a form of the word itself ("books", "sleep" for "sleepy"): it sounds like
            # the word, and a repetition of the word would be heard as a try.
            misses = [c for c in self._by_onset[lang].get(target[:2], [])
                      if c not in page and phones(c)[:1] == sounds[:1]
                      and not c.startswith(target) and not target.startswith(c)
                      ][: self.near_misses]
            if misses:
                out[target] = misses
        return out

    def _pronunciations(self, path: str) -> dict[str, list[str]]:
        """word -> its dictionary lines (alternates "word(2)" included), read once."""
        if path not in self._prons:
            table: dict[str, list[str]] = defaultdict(list)
            with open(path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    head = line.split(maxsplit=1)
                    if len(head) == 2:
                        table[head[0].split("(")[0]].append(line.rstrip("\n"))
            self._prons[path] = dict(table)
        return self._prons[path]

    def _dictionary(self, path: str) -> set[str]:
        if path not in self._dict_words:
            self._dict_words[path] = dictionary_words(path)
        return self._dict_words[path]

    def adapter(self, lang: str) -> SpeakerAdapter | None:
        """The reader adaptation of `lang`'s model (adaptation.py), loaded once; None when off
        (`speaker_adaptation: false`) or when the model is not the tied layout it reads."""
        if not self.speaker_adaptation:
            return None
        with self._adapters_lock:
            if lang not in self._adapters:
                model = self._model(lang)
                voice = "fr" if lang == "fr" else "en-us"
                try:
                    self._adapters[lang] = SpeakerAdapter(
                        model["hmm"], model["dict"],
                        pronounce=lambda w: espeak_pronunciation(w, voice),
                        known_words=lambda: self._dictionary(model["dict"]))
                except AdaptationUnavailable as exc:
                    log.info("speaker adaptation off for '%s': %s", lang, exc)
                    self._adapters[lang] = None
            return self._adapters[lang]

    def recognizer(self, lang: str, vocabulary: Sequence[str] | None = None,
                   text: str | None = None, *, adaptation: Transform | None = None
                   ) -> PocketsphinxRecognizer:
        from pocketsphinx import Decoder

        model = self._model(lang)
        kwargs: dict[str, Any] = {"hmm": model["hmm"], "dict": model["dict"],
                                  "samprate": SAMPLE_RATE, "loglevel": "FATAL"}
        if lang == "en":
            kwargs["cmninit"] = self.cmninit
        if vocabulary is None:
            builtin_lm = Path(model["hmm"]).parent / f"{Path(model['hmm']).name}.lm.bin"
            if "lm" in model:
                kwargs["lm"] = model["lm"]
            elif builtin_lm.exists():
                kwargs["lm"] = str(builtin_lm)
            else:
                raise ASRUnavailable(f"free recognition needs pocketsphinx_models.{lang}.lm")
            free_tmp = self._adapted(kwargs, adaptation)
            try:
                return PocketsphinxRecognizer(Decoder(**kwargs), None, free_tmp)
            except RuntimeError as exc:
                if free_tmp is not None:
                    free_tmp.cleanup()
                raise ASRUnavailable(f"pocketsphinx could not load the model ({exc})") from exc
        kwargs["lm"] = None
        kwargs["lw"] = self.language_weight
        # No word insertion penalty (the page model was always used so; `decoder_options`
        # may set one, which now applies).
        kwargs["wip"] = 1.0
        # No phone-loop lookahead: on a page-sized vocabulary it saves little, and with it the
        # streaming search lost every path on some voices (benchmarks/reading.py: one page
        # recognised as "one lily" and 24 words of silence after it; with pl_window 0, the
        # whole page).
        kwargs["pl_window"] = 0
        kwargs["topn"] = self.topn
        kwargs["fwdflatlw"] = self.fwdflat_lw
        kwargs.update(self.decoder_options)
        # A dictionary of just the page's words (and garbage words): adding a language model
        # to a decoder holding the whole 134k-word dictionary takes ~3 s, with the page's
        # dictionary ~2 ms, so every page gets its own small decoder.
        pronunciations = self._pronunciations(model["dict"])
        words = [w.lower() for w in vocabulary if w]
        voice = "fr" if lang == "fr" else "en-us"
        garbage = [g for g in self.garbage.get(lang, []) if g in pronunciations]
        garbage += self._frequent_words(lang, model)
        lines: list[str] = []
        first_phones: dict[str, list[str]] = {}
        for w in sorted(set(words) | set(garbage)):
            if w in pronunciations:
                lines.extend(pronunciations[w])
                first_phones[w] = pronunciations[w][0].split()[1:]
                continue
            phones = espeak_pronunciation(w, voice)
            if not phones:
                raise ASRUnavailable(f"no pronunciation for '{w}' (not in {model['dict']}, "
                                     "and espeak-ng is missing)")
            log.debug("pronunciation from espeak-ng: %s %s", w, phones)
            lines.append(f"{w} {phones}")
            first_phones[w] = phones.split()
        garbage_prob = self.garbage_prob if garbage else 0.0
        near = self._near_misses(lang, model, words)
        for w in sorted({m for ms in near.values() for m in ms} - set(words) - set(garbage)):
            lines.extend(pronunciations[w])
        if self.fragments:
            frags = []
            for w in sorted(set(words)):
                head = first_phones.get(w, [])
                if len(head) >= 4 and len(w) >= 4:
                    frags.append(FRAGMENT_PREFIX + w)
                    lines.append(f"{FRAGMENT_PREFIX}{w} {' '.join(head[:len(head) // 2])}")
            if frags:
                garbage = [*garbage, *frags]
                garbage_prob += self.fragment_prob
        fragment_map = {f[len(FRAGMENT_PREFIX):]: f for f in garbage
                        if f.startswith(FRAGMENT_PREFIX)}
        tmpdir = self._adapted(kwargs, adaptation) or tempfile.TemporaryDirectory(
            prefix="passeur-lm-")
        page_dict = Path(tmpdir.name) / "page.dict"
        page_dict.write_text("\n".join(lines) + "\n", encoding="utf-8")
        kwargs["dict"] = os.fspath(page_dict)
        lm_path = Path(tmpdir.name) / "page.arpa"
        lm_path.write_text(build_arpa(words, garbage, follow_prob=self.follow_prob,
                                      garbage_prob=garbage_prob, fragments=fragment_map,
                                      fragment_share=self.fragment_share, near_misses=near,
                                      near_miss_share=self.near_miss_share,
                                      sentence_starts=sentence_starts(text, lang, words)
                                      if self.sentence_starts else ()),
                           encoding="utf-8")
        try:
            decoder = Decoder(**kwargs)
            # Read through the decoder's configuration, so that its language weight (`lw`)
            # and insertion penalty apply to the first pass: `NGramModel.readfile` reads a
            # model with weight 1 whatever `lw` says, and pocketsphinx then only scales the
            # second pass by fwdflatlw / lw.
            decoder.add_lm_file("page", os.fspath(lm_path))
            decoder.activate_search("page")
        except RuntimeError as exc:
            tmpdir.cleanup()
            raise ASRUnavailable(f"pocketsphinx could not load the page model ({exc})") from exc
        return PocketsphinxRecognizer(decoder, lm_path, tmpdir)

    @staticmethod
    def _adapted(kwargs: dict[str, Any], adaptation: Transform | None
                 ) -> tempfile.TemporaryDirectory[str] | None:
        """With a reader's transform: a private folder holding it as pocketsphinx's MLLR file,
        named in the decoder's settings (`mllr`); the recogniser removes it when closed."""
        if adaptation is None:
            return None
        tmpdir = tempfile.TemporaryDirectory(prefix="passeur-lm-")
        path = Path(tmpdir.name) / "reader.mllr"
        write_mllr(path, adaptation)
        kwargs["mllr"] = os.fspath(path)
        return tmpdir
