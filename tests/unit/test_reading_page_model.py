"""The page's language model (ARPA text built by the pocketsphinx backend): sentence starts and
near misses."""

from __future__ import annotations

import math

from passeur.reading.asr_pocketsphinx import NEAR_MISS_UNIGRAM, build_arpa, sentence_starts


def ngrams(arpa: str) -> dict[str, float]:
    """'w1 w2 ...' -> log10 probability, from the ARPA text."""
    out: dict[str, float] = {}
    for line in arpa.splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and not line.startswith(("\\", "ngram")):
            out[fields[1]] = float(fields[0])
    return out


def test_a_near_miss_is_expected_just_before_its_word_and_followed_by_it() -> None:
    """ "ball... basket": the try is likely only where "basket" is, then "basket" follows."""
    arpa = build_arpa(["a", "big", "basket", "and", "a", "ball"], [],
                      near_misses={"basket": ["back", "bad"]}, near_miss_share=0.2)
    p = ngrams(arpa)
    assert p["back"] == p["bad"] == round(math.log10(NEAR_MISS_UNIGRAM), 4)  # rare elsewhere
    # After the word before "basket" (bigram and trigram), each near miss gets share / K of
    # the word's own weight.
    for context in ("big", "a big"):
        assert math.isclose(10 ** p[f"{context} back"] / 10 ** p[f"{context} basket"], 0.1,
                            rel_tol=1e-3)
    assert p["back basket"] >= round(math.log10(0.9), 4) and p["bad basket"] == p["back basket"]
    assert "back and" not in p and "and back" not in p and "<s> back" not in p
    # Every bigram's probabilities still sum to at most 1 (page words follow as before).
    for context in ("<s>", "a", "big", "basket"):
        assert sum(10 ** v for k, v in p.items() if k.split()[:-1] == [context]) <= 1.0 + 1e-3


def test_near_misses_that_are_page_words_or_of_words_not_on_the_page_are_left_out() -> None:
    arpa = build_arpa(["the", "ball", "and", "the", "basket"], [],
                      near_misses={"basket": ["ball", "back"], "boat": ["both"]})
    p = ngrams(arpa)
    assert "ball basket" not in p and "both" not in p and "the back" in p
    assert build_arpa(["the", "basket"], []) == build_arpa(["the", "basket"], [],
                                                           near_misses={})


def test_an_utterance_is_expected_to_start_a_sentence() -> None:
    """A reader pauses at full stops (where the session also ends an utterance), so after <s>
    each sentence's first word is as likely as the page's first word, with its sentence's
    second word after it; any other page word may still start an utterance (a pause
    mid-sentence), less likely."""
    text = "Tom has a boat. One morning, Mr. Fox ran!\nIt was 21 days"
    words = ["tom", "has", "a", "boat", "one", "morning", "mister", "fox", "ran", "it", "was",
             "twenty", "one", "days"]
    starts = sentence_starts(text, "en", words)
    assert [words[k] for k in starts] == ["one", "it"]  # "Mr." ends no sentence
    p = ngrams(build_arpa(words, [], sentence_starts=starts))
    assert p["<s> tom"] == p["<s> one"] == p["<s> it"]
    assert p["<s> morning"] < p["<s> tom"] - 1.0
    assert "<s> one morning" in p and "<s> it was" in p and "<s> morning fox" not in p
    assert sum(10 ** v for k, v in p.items() if k.split()[:-1] == ["<s>"]) <= 1.0 + 1e-3
    # Without them, only the page's first word is expected after <s> (as before).
    p = ngrams(build_arpa(words, []))
    assert p["<s> one"] == p["<s> morning"] < p["<s> tom"]


def test_sentence_starts_need_the_page_the_words_come_from() -> None:
    assert sentence_starts("Tom ran. Ben sat.", "en", ["tom", "ran", "ben", "sat"]) == [2]
    assert sentence_starts("Tom ran. Ben sat.", "en", ["tom", "ran"]) == []  # other words
    assert sentence_starts(None, "en", ["tom"]) == []
    assert sentence_starts("Le chat dort. L'arbre bouge.", "fr",
                           ["le", "chat", "dort", "l", "arbre", "bouge"]) == [3]
