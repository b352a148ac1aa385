"""Streaming alignment of recognised words to the page, and miscue classification.

Each time the recogniser's hypothesis changes, `Aligner.update()` re-aligns the whole
hypothesis to the page (a page is short: ~50 x 60 cells of dynamic programming, a few ms) with
a *semi-global* edit distance: every recognised word must be accounted for, but the page may
stop anywhere (what is not read yet is not an omission). The end of the best path is the
reader's position; the path gives each page word an outcome:

- ``correct``: heard as written;
- ``substitution``: another word was heard in its place;
- ``omission``: skipped (only once the reader went past it, or at the end of the page);
- ``self_correction``: a wrong attempt, then the right word (counted correct, as tutors do);
- ``hesitation`` (a flag on a page word): a pause longer than ``hesitation_s`` before it;
  time the robot was speaking (microphone muted) is not the reader's pause;

and each extra recognised word is an ``insertion`` (not in the text) or a ``repetition``
(a word just read, said again). A page-following recogniser can only name page words: a word
that is not on the page usually leaves a gap between two recognised words although the voice
activity detector heard speech there; such a gap (>= ``unclear_min_s`` of speech, holding a
syllable of its own when frame levels are given) becomes an ``unclear`` extra (an added word,
a wrong try or a filler, placed before the next page word).

Forgiveness, as good tutors do (these words count as correct in the accuracy and WCPM, and the
result says why, ``forgiven``):

- very short function words (the, a, of, le, la, de, ...: `text.FUNCTION_WORDS`) skipped or
  swapped for another function word are not counted against the reader: children (and
  recognisers) swallow them, and tutors do not stop a child for them;
- the last word of a line, when cut (heard as its beginning, e.g. "elep" for "elephant", or a
  close variant): the reader moved on to the next line, or the recording stopped;
- the last word of the page is not an omission when the audio simply ended before it was
  recognised after the reader had read the word before it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from functools import lru_cache

from passeur.reading.asr import Hypothesis, RecognizedWord
from passeur.reading.text import FUNCTION_WORDS, Page, match_keys

CORRECT = "correct"
SUBSTITUTION = "substitution"
OMISSION = "omission"
SELF_CORRECTION = "self_correction"
INSERTION = "insertion"
REPETITION = "repetition"
UNCLEAR = "unclear"  # speech the recogniser could not put a word on (an added word, a filler)
PENDING = "pending"  # not reached yet

MISCUES = (SUBSTITUTION, OMISSION)


@dataclass
class WordResult:
    index: int  # index in page.words
    token: int  # display token index
    expected: str  # lexical form
    outcome: str = PENDING
    heard: str | None = None
    start_s: float | None = None
    end_s: float | None = None
    pause_before_s: float | None = None
    hesitation: bool = False
    forgiven: str | None = None  # why a miscue is not counted ("function word", "line end")
    attempts: list[str] = field(default_factory=list)  # wrong tries before a self-correction
    told: bool = False  # the robot said this word for the reader
    acoustic_per_frame: float | None = None  # how well the sounds fit (RecognizedWord)

    @property
    def counted_correct(self) -> bool:
        if self.told:
            return False
        return self.outcome in (CORRECT, SELF_CORRECTION) or (
            self.outcome in MISCUES and self.forgiven is not None)

    @property
    def is_miscue(self) -> bool:
        return self.outcome in MISCUES and self.forgiven is None

    def labels(self) -> list[str]:
        out = [self.outcome]
        if self.hesitation:
            out.append("hesitation")
        return out


@dataclass
class Extra:
    """A recognised word that is not a page word: insertion or repetition."""

    kind: str
    heard: str
    before: int  # the page word index it came before
    start_s: float
    end_s: float


@dataclass
class AlignmentState:
    words: list[WordResult]
    extras: list[Extra]
    position: int  # index of the next page word to read
    last_heard_end_s: float | None
    audio_s: float
    finished: bool = False

    @property
    def current_token(self) -> int | None:
        """The display token of the last page word reached (what to highlight)."""
        for w in reversed(self.words[: self.position]):
            if w.outcome != OMISSION:
                return w.token
        return None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for w in self.words:
            out[w.outcome] = out.get(w.outcome, 0) + 1
            if w.hesitation:
                out["hesitation"] = out.get("hesitation", 0) + 1
        for e in self.extras:
            out[e.kind] = out.get(e.kind, 0) + 1
        return out


@lru_cache(maxsize=65536)
def similarity(a: str, b: str) -> float:
    return SequenceMatcher(a=a, b=b, autojunk=False).ratio()


#: A recognised copy of the next page word this much shorter than the word itself is a
#: cut-off try, not a repetition: a page-following recogniser hears "gar... garden" as
#: "garden garden", the first one squeezed into the fragment's time. Content words only:
#: the length of a function word ("the", "a") varies twice over in plain reading, and the
#: rule made "the the" a self-correction (a false alarm) without finding any cut-off try
#: (benchmarks/reading.py, 40 pages). 0.75: a plain repetition's copies come out within about
#: 15 % of each other; at 0.6 a "gar... garden" heard at 69 % of the reading's length was a
#: repetition. Three generated sets (seeds 1-3), re-scored: 0.7 to 0.85 each find one more
#: self-correction on seeds 1 and 3 than 0.6, with the same false alarms and repetitions.
FRAGMENT_DURATION_RATIO = 0.75


def _is_fragment(src: RecognizedWord, target: WordResult, functions: set[str]
                 ) -> bool:
    if target.start_s is None or target.end_s is None or target.expected in functions:
        return False
    full = target.end_s - target.start_s
    return full > 0 and src.end_s - src.start_s < FRAGMENT_DURATION_RATIO * full


#: A recognised copy of the next page word whose sounds fit that word this much worse (natural
#: log per 10 ms frame) than the reading of the word right after it is a try, not a
#: repetition: a page-following recogniser names a cut-off or wrong try ("gar... garden",
#: "du... duck") after the word it resembles, but the sounds fit it less well than the
#: reader's own finished reading of it, said a moment later in the same voice. A repetition
#: fits about as well as the reading (measured on benchmarks/reading.py, two generated sets,
#: with 4 Gaussians per frame: differences of -0.9 to +2.1 for repetitions, -2.5 to +2.0 for
#: tries, most below -0.5; with 32, margins from 0 to 1.0 changed at most one miscue per set,
#: docs/reading.md).
#: A try that sounds like the word ("book... boat") fits as well and stays a repetition.
TRY_FIT_MARGIN = 0.5


def _poorer_fit(src: RecognizedWord, target: WordResult, functions: set[str]) -> bool:
    if target.expected in functions or src.acoustic_per_frame is None \
            or target.acoustic_per_frame is None:
        return False
    return src.acoustic_per_frame < target.acoustic_per_frame - TRY_FIT_MARGIN


#: A reader stretches the last word of a sentence before pausing, and a page-following
#: recogniser may name that stretched end as a short word of its own: "every day" + pause heard
#: as "every day *the*" (tests/integration/test_reading_asr.py, pocketsphinx's second pass at
#: a lower language weight: 3 of 8 recordings, en-us+f3). A function word heard straight after
#: the last word of a sentence (within SENTENCE_TAIL_JOIN_S of its end) and followed by a
#: pause (SENTENCE_TAIL_PAUSE_S without a word heard, or nothing heard yet) is that tail, not
#: extra speech. A word added before the next sentence comes after the pause, and a copy of
#: the sentence's last word itself stays a repetition.
SENTENCE_TAIL_JOIN_S = 0.04
SENTENCE_TAIL_PAUSE_S = 0.15


def _similar_attempt(attempt: str, target: str) -> bool:
    """Looks like a try at `target`: its beginning, or close in spelling."""
    if len(attempt) >= 2 and target.startswith(attempt):
        return True
    return attempt[:1] == target[:1] or similarity(attempt, target) >= 0.5


class Aligner:
    def __init__(self, page: Page, *, hesitation_s: float = 2.0, forgive_function_words: bool
                 = True, forgive_line_end: bool = True, unclear_min_s: float = 0.2) -> None:
        self.page = page
        self.lang = page.lang
        self.hesitation_s = hesitation_s
        self.unclear_min_s = unclear_min_s
        self.forgive_function_words = forgive_function_words
        self.forgive_line_end = forgive_line_end
        self.expected = page.keys()
        self.told: set[int] = set()
        self._functions = FUNCTION_WORDS[page.lang]
        self._muted: Sequence[bool] | None = None
        self._frame_s = 0.02
        self.state = AlignmentState(self._fresh(), [], 0, None, 0.0)

    def _fresh(self) -> list[WordResult]:
        return [WordResult(index=i, token=w.token, expected=w.lex)
                for i, w in enumerate(self.page.words)]

    def mark_told(self, index: int) -> None:
        """The robot said page word `index` for the reader (it is not counted correct)."""
        self.told.add(index)

    # -- alignment ---------------------------------------------------------------------------
    def _sub_cost(self, e: str, h: str) -> float:
        if e == h:
            return 0.0
        if e in self._functions and h in self._functions:
            return 0.6
        # A near miss aligns as a substitution rather than an insertion plus an omission.
        return 0.8 if similarity(e, h) >= 0.6 else 1.0

    def _align(self, hyp: Sequence[str]) -> list[tuple[str, int, int]]:
        """Semi-global alignment; returns ops (op, expected index, hyp index)."""
        exp = self.expected
        n, m = len(exp), len(hyp)
        inf = float("inf")
        cost = [[inf] * (m + 1) for _ in range(n + 1)]
        back: list[list[str]] = [[""] * (m + 1) for _ in range(n + 1)]
        cost[0][0] = 0.0
        for i in range(n + 1):
            for j in range(m + 1):
                c = cost[i][j]
                if c == inf:
                    continue
                if i < n and j < m:
                    s = c + self._sub_cost(exp[i], hyp[j])
                    if s < cost[i + 1][j + 1]:
                        cost[i + 1][j + 1] = s
                        back[i + 1][j + 1] = "m"
                if j < m:
                    s = c + 1.0
                    if s < cost[i][j + 1]:
                        cost[i][j + 1] = s
                        back[i][j + 1] = "i"
                if i < n:
                    s = c + (0.7 if exp[i] in self._functions else 1.0)
                    if s < cost[i + 1][j]:
                        cost[i + 1][j] = s
                        back[i + 1][j] = "d"
        # The page may stop anywhere; on ties keep the earliest position (do not run ahead).
        end = min(range(n + 1), key=lambda i: (cost[i][m], i))
        ops: list[tuple[str, int, int]] = []
        i, j = end, m
        while i > 0 or j > 0:
            op = back[i][j]
            if op == "m":
                i, j = i - 1, j - 1
                ops.append(("m", i, j))
            elif op == "i":
                j -= 1
                ops.append(("i", i, j))
            else:
                i -= 1
                ops.append(("d", i, j))
        ops.reverse()
        return ops

    def update(self, hyp: Hypothesis, *, finished: bool = False,
               speech: Sequence[bool] | None = None, frame_s: float = 0.02,
               muted: Sequence[bool] | None = None,
               levels: Sequence[float] | None = None) -> AlignmentState:
        """Re-align the whole hypothesis. `speech`: voice activity per audio frame (optional),
        to notice speech that no recognised word accounts for. `muted`: per audio frame, the
        microphone was muted while the robot spoke (optional): not counted in pauses.
        `levels`: per audio frame, its level in dB (optional): such speech must hold a
        syllable of its own (`NUCLEUS_RISE_DB`)."""
        self._muted, self._frame_s = muted, frame_s
        # One recognised word may give several keys ("twenty-one"); keep their timings.
        keys: list[str] = []
        sources: list[RecognizedWord] = []
        for word in hyp.words:
            for k in match_keys(word.text, self.lang):
                keys.append(k)
                sources.append(word)
        ops = self._align(keys)
        words = self._fresh()
        extras: list[Extra] = []
        position = 0
        pending_ins: list[int] = []  # hyp indices inserted before the next page word
        for op, i, j in ops:
            if op == "i":
                pending_ins.append(j)
                continue
            result = words[i]
            if op == "m":
                src = sources[j]
                result.heard = src.text
                result.start_s, result.end_s = src.start_s, src.end_s
                result.acoustic_per_frame = src.acoustic_per_frame
                result.outcome = CORRECT if keys[j] == self.expected[i] else SUBSTITUTION
            else:
                result.outcome = OMISSION
            self._place_insertions(pending_ins, i, keys, sources, words, extras)
            pending_ins = []
            position = i + 1
        if pending_ins:
            self._place_insertions(pending_ins, position, keys, sources, words, extras)
        if finished:
            for w in words[position:]:
                w.outcome = OMISSION
            if position < len(words) and position > 0 and len(words) - position == 1 \
                    and words[position - 1].outcome == CORRECT and self.forgive_line_end:
                words[-1].forgiven = "audio ended"
            position = len(words)
        self._timings(words, sources, extras)
        if speech is not None:
            self._unclear(ops, sources, extras, speech, frame_s, levels)
        self._forgive(words)
        for index in self.told:
            if index < len(words):
                words[index].told = True
        last_end = sources[-1].end_s if sources else None
        self.state = AlignmentState(words, extras, position, last_end, hyp.audio_s, finished)
        return self.state

    def _place_insertions(self, hyp_indices: list[int], before: int, keys: list[str],
                          sources: list[RecognizedWord], words: list[WordResult],
                          extras: list[Extra]) -> None:
        if not hyp_indices:
            return
        target = words[before] if before < len(words) else None
        attempt_seen = False
        run = [keys[j] for j in hyp_indices]
        tail_end = self._sentence_end_s(before, words)
        for n, j in enumerate(hyp_indices):
            key = keys[j]
            src = sources[j]
            if tail_end is not None and self._sentence_tail(key, src, j, tail_end, before,
                                                            sources):
                tail_end = src.end_s  # the tail may be heard as two short words
                continue
            tail_end = None
            if target is not None and target.outcome == CORRECT and \
                    key == self.expected[before] and (_is_fragment(src, target, self._functions)
                                                      or _poorer_fit(src, target, self._functions)):
                attempt_seen = True
                target.attempts.append(src.text)
                continue
            if self._re_says(run, n, before, words):
                extras.append(Extra(REPETITION, src.text, before, src.start_s, src.end_s))
                continue
            if target is not None and target.outcome == CORRECT and \
                    _similar_attempt(key, self.expected[before]):
                attempt_seen = True
                target.attempts.append(src.text)
                continue
            extras.append(Extra(INSERTION, src.text, before, src.start_s, src.end_s))
        if attempt_seen and target is not None:
            target.outcome = SELF_CORRECTION
            first = sources[hyp_indices[0]]
            target.start_s = min(target.start_s or first.start_s, first.start_s)

    def _sentence_end_s(self, before: int, words: list[WordResult]) -> float | None:
        """When the extras before page word `before` come right after the heard last word of a
        sentence: that word's end (s); else None."""
        if before == 0:
            return None
        last = words[before - 1]
        if last.end_s is None or last.outcome not in (CORRECT, SUBSTITUTION):
            return None
        return last.end_s if self.page.tokens[last.token].sentence_end else None

    def _sentence_tail(self, key: str, src: RecognizedWord, j: int, tail_end: float,
                       before: int, sources: list[RecognizedWord]) -> bool:
        """Extra `src` (hypothesis index `j`) is the stretched end of the sentence's last word
        (SENTENCE_TAIL_JOIN_S): a function word joined to it and followed by a pause."""
        if key not in self._functions or key == self.expected[before - 1] \
                or src.start_s - tail_end > SENTENCE_TAIL_JOIN_S:
            return False
        following = next((s for s in sources[j + 1:] if s is not src), None)
        return following is None or following.start_s - src.end_s >= SENTENCE_TAIL_PAUSE_S

    def _re_says(self, run: list[str], n: int, before: int, words: list[WordResult]) -> bool:
        """Extra word `run[n]` (the extras heard before page word `before`) is one reading of
        words said twice: the word just read, or one of the last few words read that starts
        (or continues) a re-said stretch of the text, as in "the dog... the dog ran"; or the
        first of two readings of what comes next (the extras, then the page's words, the
        first of them read correctly). A recently read word heard alone out of place ("the
        farm *the* one") is not a repetition: a page-following recogniser names an added word
        with a page word, most often a short one ("the", "to"), so it is an insertion
        (benchmarks/reading.py: 3 of its 7 missed insertions were heard so, as repetitions)."""
        key = run[n]
        exp = self.expected
        if before > 0 and key == exp[before - 1]:
            return True
        if before < len(words) and words[before].outcome == CORRECT:
            # run[n-k : n+1] is exp[before : before+k+1], the page's words read after it
            for k in range(n + 1):
                if run[n - k:n + 1] == exp[before:before + k + 1]:
                    return True
        for s in range(max(0, before - 3), before - 1):
            if exp[s] != key:
                continue
            # The stretch exp[s:] re-said from this extra on, or this extra continuing it.
            if n + 1 < len(run) and run[n + 1] == exp[s + 1]:
                return True
            if n > 0 and s > 0 and run[n - 1] == exp[s - 1]:
                return True
        return False

    def _unclear(self, ops: list[tuple[str, int, int]], sources: list[RecognizedWord],
                 extras: list[Extra], speech: Sequence[bool], frame_s: float,
                 levels: Sequence[float] | None = None) -> None:
        before_of: dict[int, int] = {}
        matched: dict[int, int] = {}
        for op, i, j in ops:
            if op in ("m", "i"):
                before_of.setdefault(j, i)
            if op == "m":
                matched[j] = i
        min_frames = max(1, round(self.unclear_min_s / frame_s))
        seen: list[tuple[int, RecognizedWord]] = []
        for j, src in enumerate(sources):
            if not seen or seen[-1][1] is not src:
                seen.append((j, src))
        tokens = self.page.tokens
        for (ja, a), (j, b) in zip(seen, seen[1:], strict=False):
            prev = matched.get(ja)
            # A reader stretches the last word of a sentence before pausing, and the
            # recogniser often ends that word early: its tail is not extra speech.
            if prev is not None and tokens[self.page.words[prev].token].sentence_end:
                continue
            lo = int((a.end_s + 0.04) / frame_s)
            hi = int((b.start_s - 0.04) / frame_s)
            if hi - lo >= min_frames and _longest_run(speech[lo:hi]) >= min_frames and (
                    levels is None or _has_nucleus(levels, self._muted, lo, hi)):
                extras.append(Extra(UNCLEAR, "?", before_of.get(j, 0), a.end_s, b.start_s))
        extras.sort(key=lambda e: e.start_s)

    def _timings(self, words: list[WordResult], sources: list[RecognizedWord],
                 extras: list[Extra]) -> None:
        # Pause before a page word: from the end of whatever was heard before its first sound.
        heard_spans = sorted({(s.start_s, s.end_s) for s in sources})
        for w in words:
            if w.start_s is None:
                continue
            previous_end = None
            for start, end in heard_spans:
                if end <= w.start_s + 1e-6 and start < w.start_s:
                    previous_end = end
                elif start >= w.start_s:
                    break
            if previous_end is not None:
                # The reader waiting for the robot to finish speaking is not hesitating.
                w.pause_before_s = max(0.0, w.start_s - previous_end - muted_s(
                    self._muted, self._frame_s, previous_end, w.start_s))
                w.hesitation = w.pause_before_s > self.hesitation_s

    def _read_around(self, words: list[WordResult], index: int) -> bool:
        """A skipped function word is only forgiven inside reading: the nearest content word
        before or after it was read (a page nobody read scores nothing)."""
        for step in (-1, 1):
            j = index + step
            while 0 <= j < len(words) and self.expected[j] in self._functions:
                j += step
            if 0 <= j < len(words) and words[j].outcome not in (OMISSION, PENDING):
                return True
        return False

    def _forgive(self, words: list[WordResult]) -> None:
        tokens = self.page.tokens
        for w in words:
            if w.outcome not in MISCUES or w.forgiven:
                continue
            exp = self.expected[w.index]
            heard = match_keys(w.heard, self.lang) if w.heard else []
            heard_key = heard[0] if heard else ""
            if self.forgive_function_words and exp in self._functions and (
                    heard_key in self._functions
                    or (w.outcome == OMISSION and self._read_around(words, w.index))):
                w.forgiven = "function word"
                continue
            last_of_line = tokens[w.token].line_end and (
                w.index + 1 == len(words) or words[w.index + 1].token != w.token)
            if self.forgive_line_end and last_of_line and w.outcome == SUBSTITUTION and (
                    (len(heard_key) >= 2 and exp.startswith(heard_key))
                    or similarity(heard_key, exp) >= 0.75):
                w.forgiven = "line end"


#: Unclear speech holds a syllable of its own: somewhere in it the level rises at least this
#: much above its lowest point before (a vowel after a consonant or a pause). The tail of the
#: word before it, which the recogniser ended early (a fading nasal: "Sam" drawn out), or the
#: voice-activity detector's hangover into a pause, only fades. Frames muted while the robot
#: spoke (the microphone gives zeros) are skipped and start the search again: their silence is
#: not the reader's. Measured on the benchmark's decodes (three sets, 40 pages each):
#: stretches where nothing was said rose 0.6-4.3 dB, the others 13-80 dB (docs/reading.md,
#: "Unclear speech holds a syllable").
NUCLEUS_RISE_DB = 6.0


def _has_nucleus(levels: Sequence[float], muted: Sequence[bool] | None, lo: int,
                 hi: int) -> bool:
    """Whether the level (dB per frame) rises NUCLEUS_RISE_DB above its lowest point so far
    in frames [lo, hi), a muted frame starting the search again."""
    lowest = math.inf
    for k in range(max(lo, 0), min(hi, len(levels))):
        if muted is not None and k < len(muted) and muted[k]:
            lowest = math.inf
            continue
        lowest = min(lowest, levels[k])
        if levels[k] - lowest >= NUCLEUS_RISE_DB:
            return True
    return False


def _longest_run(flags: Sequence[bool]) -> int:
    """The longest run of consecutive true flags. Speech nobody put a word on is one stretch
    of voice (a word, a try, a filler): bits of voice on both sides of a silence are the
    edges of the words around it (a sentence pause: the end of one sentence's last word and
    the start of the next one's first), not something said in between."""
    best = run = 0
    for flag in flags:
        run = run + 1 if flag else 0
        best = max(best, run)
    return best


@dataclass
class PageScore:
    words_total: int  # display tokens on the page
    words_correct: int
    accuracy: float  # 0..1, words correct / words on the page
    reading_time_s: float
    wcpm: float
    miscues: int
    hard_words: list[str]


def muted_s(muted: Sequence[bool] | None, frame_s: float, start_s: float, end_s: float
            ) -> float:
    """Seconds between `start_s` and `end_s` when the microphone was muted (robot speaking)."""
    if not muted or end_s <= start_s:
        return 0.0
    lo = max(0, int(start_s / frame_s))
    hi = min(len(muted), int(end_s / frame_s))
    return sum(muted[lo:hi]) * frame_s if hi > lo else 0.0


def score(page: Page, state: AlignmentState, muted: Sequence[bool] | None = None,
          frame_s: float = 0.02) -> PageScore:
    """Accuracy and words correct per minute over display tokens (a token such as "l'arbre"
    or "21" is correct when all of its spoken words are). `muted` (per audio frame, the
    microphone muted while the robot spoke): that time is not the reader's reading time
    ("Together": the robot reads each sentence first)."""
    by_token: dict[int, list[WordResult]] = {}
    for w in state.words:
        by_token.setdefault(w.token, []).append(w)
    reached = [t for t, ws in by_token.items() if any(w.outcome != PENDING for w in ws)]
    correct = sum(1 for t in reached if all(w.counted_correct for w in by_token[t]))
    total = len(page.tokens)
    times = [(w.start_s, w.end_s) for w in state.words if w.start_s is not None
             and w.end_s is not None]
    reading_time = 0.0
    if times:
        first, last = min(s for s, _ in times), max(e for _, e in times)
        reading_time = last - first - muted_s(muted, frame_s, first, last)
    wcpm = correct / (reading_time / 60.0) if reading_time > 0 else 0.0
    hard: list[str] = []
    # Words after the last one heard were never tried (the reader stopped there, or nothing
    # was heard at all): omissions for the accuracy, but not hard words (the rest of the page
    # was offered for practice, and listed as hard for the librarian).
    heard = [w.index for w in state.words if w.start_s is not None]
    last_heard = max(heard) if heard else -1
    for t in sorted(by_token):
        ws = by_token[t]
        if min(w.index for w in ws) > last_heard:
            break
        if any(w.is_miscue or w.told or w.outcome == SELF_CORRECTION or w.hesitation
               for w in ws):
            shown = page.tokens[t].text
            if shown not in hard:
                hard.append(shown)
    return PageScore(words_total=total, words_correct=correct,
                     accuracy=correct / total if total else 0.0, reading_time_s=reading_time,
                     wcpm=wcpm, miscues=sum(1 for w in state.words if w.is_miscue),
                     hard_words=hard)
