"""The tutor's policy: when to help, what to say, when to praise. Pure logic, no I/O.

- Stuck (once the reader has started): no new word for `stuck_s` seconds (audio time) on page
  word p -> say the word. Still stuck `sentence_after_s` after the robot finished saying it ->
  read the sentence with the reader. Never more than that
  per word, never two interventions closer than `min_gap_s`, at most `max_helps_per_page`.
- While the robot speaks (and just after) the stuck timer is held: the reader needs time to
  repeat.
- End of a sentence read well (accuracy >= praise_sentence_min_accuracy) -> a short praise, at
  most every `praise_min_gap_s`.
- End of page: praise or encouragement that names something specific (faster than the last
  reading of this page, or a word read perfectly, preferably one that was hard last time),
  then offer to practise up to `practice_words_max` hard words (misread, hesitated, told or
  self-corrected).
Phrases come from config/reading.yaml, in the book's language, rotated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from passeur.paths import share_path
from passeur.reading.alignment import CORRECT, AlignmentState, PageScore
from passeur.reading.exceptions import ReadingError
from passeur.reading.text import LANGUAGES, Page

PHRASE_KEYS = ("say_word", "say_sentence", "praise_sentence", "praise_page", "encourage_page",
               "offer_practice", "your_turn", "start_reading", "no_model", "praise_word",
               "praise_word_again", "praise_faster", "practice_say", "practice_good")


@dataclass(frozen=True)
class TutorPolicy:
    stuck_s: float = 4.0
    sentence_after_s: float = 5.0
    min_gap_s: float = 6.0
    max_helps_per_page: int = 6
    praise_sentence_min_accuracy: float = 0.9
    praise_min_gap_s: float = 20.0
    #: a sentence is praised only once the reader pauses this long (s of no voice): the robot
    #: never talks over a child who reads on (its speech would also gate their microphone)
    praise_quiet_s: float = 0.5
    practice_words_max: int = 3


#: Allowed range of each policy setting in config/reading.yaml (low, high, unit). Timings of
#: 0 let the tutor speak at every audio frame (it would nag, and talk over the reader); the
#: upper bounds catch slips such as milliseconds for seconds or a percentage for a fraction.
#: The reader page practises at most 3 words: the robot must not offer more.
POLICY_RANGES: dict[str, tuple[float, float, str]] = {
    "stuck_s": (1.0, 60.0, " s"),
    "sentence_after_s": (1.0, 60.0, " s"),
    "min_gap_s": (1.0, 600.0, " s"),
    "max_helps_per_page": (0, 50, ""),
    "praise_sentence_min_accuracy": (0.0, 1.0, ""),
    "praise_min_gap_s": (1.0, 3600.0, " s"),
    "praise_quiet_s": (0.2, 10.0, " s"),
    "practice_words_max": (0, 3, ""),
}
#: Settings that count things (a fraction would fail when used: `hard[:2.5]`).
WHOLE_NUMBER_SETTINGS = ("max_helps_per_page", "practice_words_max")


def _check_policy(path: Path, values: dict[str, Any]) -> None:
    """ReadingError naming the file, the setting and its allowed range if a value is out of
    it (or not a number: True is no count)."""
    for name, value in values.items():
        if name not in POLICY_RANGES:
            continue  # TutorPolicy refuses unknown names
        low, high, unit = POLICY_RANGES[name]
        whole = name in WHOLE_NUMBER_SETTINGS
        if isinstance(value, bool) or not isinstance(value, int | float) or \
                (whole and not isinstance(value, int)) or \
                not low <= value <= high:  # NaN fails the comparison too
            kind = "a whole number" if whole else "a number"
            raise ReadingError(f"{path}: policy: {name} must be {kind} from {low:g} to "
                               f"{high:g}{unit} (got {value!r})")


@dataclass(frozen=True)
class Action:
    kind: str  # say_word, say_sentence, praise_sentence, page_end
    text: str
    lang: str
    word_index: int | None = None
    words: tuple[str, ...] = ()


@dataclass
class Phrases:
    table: dict[str, dict[str, Any]]
    _turn: dict[str, int] = field(default_factory=dict)

    def pick(self, lang: str, key: str, **values: str) -> str:
        options = self.table[lang][key]
        n = self._turn.get(f"{lang}.{key}", 0)
        self._turn[f"{lang}.{key}"] = n + 1
        return str(options[n % len(options)]).format(**values)

    def has(self, lang: str) -> bool:
        """Phrases exist for `lang` (fr and en always do; a test-only language may not)."""
        return lang in self.table

    def join(self, lang: str, words: list[str]) -> str:
        if len(words) <= 1:
            return "".join(words)
        return ", ".join(words[:-1]) + f" {self.table[lang].get('and', 'and')} {words[-1]}"


#: What the tutor fills in a phrase; any other {name} would fail only when the robot says it.
PLACEHOLDERS = ("word", "sentence", "words", "wcpm", "previous")


def _stopped_early(state: AlignmentState) -> bool:
    """Words after the last one heard were not read (not counted correct)."""
    heard = [w.index for w in state.words if w.start_s is not None]
    if not heard:
        return True
    return any(not w.counted_correct for w in state.words[max(heard) + 1:])


def load_reading_config(path: Path | None = None) -> tuple[Phrases, TutorPolicy]:
    """Phrases and policy from config/reading.yaml; ReadingError naming the file if bad."""
    path = path or share_path("config", "reading.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ReadingError(f"{path}: reading config not found") from exc
    except UnicodeDecodeError as exc:
        raise ReadingError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                           "save it as UTF-8") from exc
    except OSError as exc:
        raise ReadingError(f"{path}: cannot read the reading config ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ReadingError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ReadingError(f"{path}: expected a mapping with 'phrases' and 'policy'")
    phrases = data.get("phrases") or {}
    if not isinstance(phrases, dict) or not all(isinstance(phrases.get(lang) or {}, dict)
                                                for lang in LANGUAGES):
        raise ReadingError(f"{path}: 'phrases' must be a mapping of languages (fr, en) to "
                           "mappings of phrase lists")
    for lang in LANGUAGES:
        for key in PHRASE_KEYS:
            options = (phrases.get(lang) or {}).get(key)
            if not isinstance(options, list) or not options:
                raise ReadingError(f"{path}: phrases.{lang}.{key} must be a non-empty list")
            for text in options:
                if not isinstance(text, str):
                    raise ReadingError(f"{path}: phrases.{lang}.{key}: {text!r} is not text; "
                                       "put it in quotes")
                try:  # sample values, as the tutor fills them (all text)
                    text.format(**dict.fromkeys(PLACEHOLDERS, "word"))
                except (KeyError, IndexError, ValueError, AttributeError) as exc:
                    names = ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
                    raise ReadingError(f"{path}: phrases.{lang}.{key}: {text!r} has a "
                                       f"placeholder the tutor cannot fill ({exc}); use only "
                                       f"{names}") from exc
    policy_values = data.get("policy") or {}
    if not isinstance(policy_values, dict):
        raise ReadingError(f"{path}: 'policy' must be a mapping of names to numbers")
    try:
        policy = TutorPolicy(**policy_values)
    except TypeError as exc:
        raise ReadingError(f"{path}: policy: {exc}") from exc
    _check_policy(path, policy_values)
    return Phrases(phrases), policy


class Tutor:
    """Decides, from the alignment state, what the robot says. Call `update()` after each
    alignment update with the audio clock; `page_end()` once the page is finished."""

    def __init__(self, page: Page, phrases: Phrases, policy: TutorPolicy | None = None, *,
                 previous: dict[str, Any] | None = None) -> None:
        """`previous`: the reader's last reading of this page ({"wcpm", "hard_words"}), for
        praise that says what improved."""
        self.page = page
        self.previous = previous
        self.lang = page.lang
        self.phrases = phrases
        self.policy = policy or TutorPolicy()
        self.helps = 0
        self._level: dict[int, int] = {}  # page word -> help level given (1 word, 2 sentence)
        self._helped_s: dict[int, float] = {}  # page word -> when its word help was given
        self._last_action_s = -1e9
        self._last_praise_s = -1e9
        self._quiet_until_s = 0.0
        self._praised_sentences: set[int] = set()
        self._pending_praise: int | None = None  # position where a sentence was read well
        self._last_position = -1
        self._position_since_s = 0.0
        self._start_s: float | None = None

    def robot_spoke(self, until_s: float) -> None:
        """The robot talked until `until_s` (audio clock): hold the stuck timer until then."""
        self._quiet_until_s = max(self._quiet_until_s, until_s)

    def update(self, state: AlignmentState, now_s: float, speaking: bool = False,
               reader_quiet_s: float | None = None) -> list[Action]:
        """`reader_quiet_s`: how long the reader's voice has been silent (voice activity);
        None when unknown (then praise is not held back)."""
        p = self.policy
        if speaking:
            self._quiet_until_s = max(self._quiet_until_s, now_s)
            return []
        actions: list[Action] = []
        if state.position != self._last_position:
            self._last_position = state.position
            self._position_since_s = now_s
        actions += self._praise(state, now_s, reader_quiet_s)
        if state.position >= len(self.page.words) or state.finished:
            return actions
        if state.position == 0:
            # Not started yet (or settling in, or the audio link is still connecting): the
            # tutor never prompts before the first page word is read.
            return actions
        # Stuck = the position has not moved since the last page word read (mumbles and
        # wrong tries do not reset the clock), and the robot is not talking.
        if self._start_s is None:
            self._start_s = now_s
        previous = state.words[state.position - 1].end_s if state.position > 0 else None
        reference = max(previous if previous is not None else self._start_s,
                        self._quiet_until_s)
        stuck_for = now_s - reference
        index = state.position
        level = self._level.get(index, 0)
        can_speak = (now_s - self._last_action_s >= p.min_gap_s
                     and self.helps < p.max_helps_per_page)
        if not can_speak or actions:
            return actions
        word = self.page.words[index]
        token = self.page.tokens[word.token]
        shown = token.text
        # An abbreviation is named as it is read ("M." -> "monsieur"): said alone in a phrase,
        # "M" is a letter. Numbers and times stay as shown (the phrase spells them out).
        named = token.said if token.said is not None and not shown[0].isdigit() else shown
        # The sentence comes `sentence_after_s` after the robot finished saying the word (the
        # stuck clock is held while it speaks: `robot_spoke`).
        since_help = now_s - max(self._helped_s.get(index, now_s), self._quiet_until_s)
        if level == 0 and stuck_for >= p.stuck_s:
            actions.append(Action("say_word", self.phrases.pick(self.lang, "say_word",
                                                                 word=named),
                                  self.lang, index, (shown,)))
            self._level[index] = 1
            self._helped_s[index] = now_s
        elif level == 1 and since_help >= p.sentence_after_s:
            sentence = self.page.sentence_text(self.page.tokens[word.token].sentence)
            actions.append(Action("say_sentence", self.phrases.pick(
                self.lang, "say_sentence", sentence=sentence), self.lang, index))
            self._level[index] = 2
        if actions:
            self.helps += 1
            self._last_action_s = now_s
        return actions

    def _praise(self, state: AlignmentState, now_s: float, quiet_s: float | None
                ) -> list[Action]:
        p = self.policy
        if self._pending_praise is not None and state.position != self._pending_praise:
            self._pending_praise = None  # the reader went on: do not talk over them
        if 0 < state.position < len(self.page.words):
            last = self.page.words[state.position - 1]
            token = self.page.tokens[last.token]
            next_word = self.page.words[state.position]
            sentence = token.sentence
            if token.sentence_end and next_word.token != last.token and \
                    sentence not in self._praised_sentences:
                self._praised_sentences.add(sentence)
                words = [w for w in state.words
                         if self.page.tokens[w.token].sentence == sentence]
                ok = sum(1 for w in words if w.counted_correct) / max(len(words), 1)
                if ok >= p.praise_sentence_min_accuracy:
                    self._pending_praise = state.position
        if self._pending_praise is None:
            return []
        if quiet_s is not None and quiet_s < p.praise_quiet_s:
            return []  # wait for the reader's pause (or drop it if they read on)
        self._pending_praise = None
        if now_s - self._last_praise_s < p.praise_min_gap_s \
                or now_s - self._last_action_s < p.min_gap_s:
            return []
        self._last_praise_s = now_s
        self._last_action_s = now_s
        return [Action("praise_sentence", self.phrases.pick(self.lang, "praise_sentence"),
                       self.lang)]

    def page_end(self, score: PageScore, state: AlignmentState | None = None) -> Action:
        """Praise (or encouragement) that names something specific, then the offer to
        practise up to `practice_words_max` hard words."""
        hard = score.hard_words[: self.policy.practice_words_max]
        key = "praise_page" if score.accuracy >= 0.95 else "encourage_page"
        if state is not None and _stopped_early(state):
            # Not "You read the whole page" / "Well done for reading to the end!": the reader
            # stopped before the end ("I'm done" after a line). Praise what was read.
            key = "praise_sentence"
        text = self.phrases.pick(self.lang, key)
        specific = self._specific_praise(score, state)
        if specific:
            text += " " + specific
        if hard:
            text += " " + self.phrases.pick(
                self.lang, "offer_practice",
                words=self.phrases.join(self.lang, [self._named(w) for w in hard]))
        return Action("page_end", text, self.lang, None, tuple(hard))

    def _specific_praise(self, score: PageScore, state: AlignmentState | None) -> str:
        """Faster than last time on this page; else a word read perfectly (one that was hard
        last time first, else the longest)."""
        previous = self.previous or {}
        before = float(previous.get("wcpm") or 0.0)
        if before > 0 and score.wcpm >= before * 1.1 and score.accuracy >= 0.8:
            return self.phrases.pick(self.lang, "praise_faster", wcpm=f"{score.wcpm:.0f}",
                                     previous=f"{before:.0f}")
        if state is None:
            return ""
        perfect: list[str] = []
        for w in state.words:
            token = self.page.tokens[w.token]
            tries = [x for x in state.words if x.token == w.token]
            if self.page.words[w.index].function_word or len(w.expected) < 4:
                continue
            if all(x.outcome == CORRECT and not x.hesitation and not x.told for x in tries) \
                    and token.text not in perfect:
                perfect.append(token.text)
        if not perfect:
            return ""
        again = [word for word in perfect if word in (previous.get("hard_words") or [])]
        if again:
            return self.phrases.pick(self.lang, "praise_word_again",
                                     word=self._named(again[0]))
        return self.phrases.pick(self.lang, "praise_word", word=self._named(
            max(perfect, key=lambda t: (len(t), -perfect.index(t)))))

    def _named(self, shown: str) -> str:
        """A word of the page (as shown) as a phrase names it: an abbreviation as it is read
        ("M" of "M. Dupont" -> "monsieur"; alone in a phrase, "M" is the letter). Numbers
        and times stay as shown: the phrase spells them out."""
        if shown[:1].isdigit():
            return shown
        return next((t.said for t in self.page.tokens if t.text == shown and t.said is not None),
                    shown)
