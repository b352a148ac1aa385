"""Tokenisation keeps what is shown and normalises what is matched; books load or fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from passeur.reading.alignment import Aligner, score
from passeur.reading.asr import Hypothesis, RecognizedWord
from passeur.reading.books import Library, load_book, parse_book
from passeur.reading.exceptions import BookError
from passeur.reading.text import match_keys, number_words, tokenize


def test_display_tokens_keep_text_and_spans() -> None:
    text = "L'arbre est grand.\nJ'ai vu 21 oiseaux !"
    page = tokenize(text, "fr")
    assert [t.text for t in page.tokens] == ["L'arbre", "est", "grand", "J'ai", "vu", "21",
                                             "oiseaux"]
    for tok in page.tokens:
        assert text[tok.start:tok.end] == tok.text
    assert [t.sentence for t in page.tokens] == [0, 0, 0, 1, 1, 1, 1]
    assert page.tokens[2].line_end and page.tokens[2].sentence_end
    assert not page.tokens[1].line_end


def test_french_elisions_hyphens_numbers_accents() -> None:
    page = tokenize("L'école de grand-mère a 21 arbres; j'ai 80 billes.", "fr")
    assert page.keys() == ["l", "ecole", "de", "grand", "mere", "a", "vingt", "et", "un",
                           "arbres", "j", "ai", "quatre", "vingts", "billes"]
    # The number's words all point back to the one token shown ("21").
    assert {page.tokens[w.token].text for w in page.words[6:9]} == {"21"}
    # Recognised text meets the page on the same keys.
    assert match_keys("l'Ecole de grand mère a vingt-et-un arbres", "fr")[:9] == page.keys()[:9]


def test_english_apostrophes_keep_lexical_form() -> None:
    page = tokenize("Don't stop, Tom's well-known cat!", "en")
    assert [w.lex for w in page.words] == ["don't", "stop", "tom's", "well", "known", "cat"]
    assert page.keys() == ["dont", "stop", "toms", "well", "known", "cat"]
    assert match_keys("DON'T stop", "en") == ["dont", "stop"]
    assert match_keys("Don\u2019t", "en") == ["dont"]


@pytest.mark.parametrize(("digits", "lang", "words"), [
    ("3", "en", ["three"]), ("21", "en", ["twenty", "one"]), ("105", "en",
                                                              ["one", "hundred", "and", "five"]),
    ("1984", "en", ["nineteen", "eighty", "four"]), ("2nd", "en", ["second"]),
    ("21", "fr", ["vingt", "et", "un"]), ("71", "fr", ["soixante", "et", "onze"]),
    ("97", "fr", ["quatre", "vingt", "dix", "sept"]), ("200", "fr", ["deux", "cents"]),
    ("1er", "fr", ["premier"]), ("3,5", "fr", ["trois", "virgule", "cinq"]),
])
def test_numbers_become_words(digits: str, lang: str, words: list[str]) -> None:
    assert number_words(digits, lang) == words


def test_function_words_are_flagged() -> None:
    page = tokenize("The cat sat on the mat.", "en")
    assert [w.function_word for w in page.words] == [True, False, False, True, True, False]


def test_sample_books_load_in_both_languages() -> None:
    library = Library()
    books = library.books()
    assert len(books) >= 4
    assert {b.lang for b in books} == {"fr", "en"}
    for book in books:
        for number in range(1, len(book.pages) + 1):
            assert book.page(number).words


def test_book_format_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "ok.md"
    good.write_text("---\ntitle: T\nlanguage: en\nlevel: 2\n---\nOne **two**.\n---page---\n"
                    "Three.\n", encoding="utf-8")
    book = load_book(good)
    assert book.pages == ["One two.", "Three."] and book.level == 2
    with pytest.raises(BookError, match="pages 1-2, not 3"):
        book.page(3)
    with pytest.raises(BookError, match="language"):
        parse_book("---\ntitle: T\nlanguage: de\n---\nHallo.\n", "x")
    with pytest.raises(BookError, match="cannot read the book file"):
        load_book(tmp_path)  # a folder (or a file the robot's user may not read)
    with pytest.raises(BookError, match="front-matter"):
        parse_book("Just text.\n", "x")
    bad = tmp_path / "bad.md"
    bad.write_bytes(b"---\ntitle: T\nlanguage: fr\n---\n\xff\xfe caf\xe9\n")
    with pytest.raises(BookError, match=r"bad\.md: not UTF-8"):
        load_book(bad)
    with pytest.raises(BookError, match="unknown book 'nope'"):
        Library(tmp_path).get("nope")
    with pytest.raises(BookError, match="not a book id"):
        Library(tmp_path).get("../etc/passwd")


def test_korean_words_are_split_on_spaces_and_matched() -> None:
    from passeur.reading.text import match_keys, tokenize

    page = tokenize("안녕하세요 선생님.\n엄마, 아빠 고양이 2마리!", "ko")
    assert [t.text for t in page.tokens] == ["안녕하세요", "선생님", "엄마", "아빠", "고양이",
                                             "2", "마리"]
    assert [t.sentence for t in page.tokens] == [0, 0, 1, 1, 1, 1, 1]
    assert page.tokens[1].line_end and not any(w.function_word for w in page.words)
    assert match_keys("엄마 아빠", "ko") == [page.words[2].key, page.words[3].key]


def test_txt_books_are_books_too(tmp_path: Path) -> None:
    from passeur.reading.books import Library

    (tmp_path / "plain.txt").write_text(
        "---\ntitle: Plain\nlanguage: en\nlevel: 1\n---\nThe snake_case *stays*.\n"
        "---page---\nPage two.\n", encoding="utf-8")
    (tmp_path / "marked.md").write_text(
        "---\ntitle: Marked\nlanguage: fr\n---\nLe **chat** dort.\n", encoding="utf-8")
    library = Library(tmp_path)
    assert library.ids() == ["marked", "plain"]
    plain = library.get("plain")
    assert plain.pages == ["The snake_case *stays*.", "Page two."]  # shown as written
    assert library.get("marked").pages == ["Le chat dort."]
    assert [b.id for b in library.books()] == ["marked", "plain"]


def test_a_book_left_out_of_the_list_is_reported_once(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A librarian adds 'Noël.md', 'Big-Book.md' or a file without its front-matter: the
    reader page did not list it and nothing anywhere said why (and `passeur read --book
    Big-Book` said ids are 'letters, digits, - and _ only', which it is)."""
    front = "---\ntitle: T\nlanguage: fr\n---\nLe chat dort.\n"
    for name in ("ok.md", "Noël.md", "Big-Book.md"):
        (tmp_path / name).write_text(front, encoding="utf-8")
    (tmp_path / "broken.md").write_text("Le chat dort.\n", encoding="utf-8")
    library = Library(tmp_path)
    with caplog.at_level("WARNING", logger="passeur.reading.books"):
        assert [b.id for b in library.books()] == ["ok"]
        library.books()
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 3, warned
    for name in ("Noël", "Big-Book", "broken"):
        assert sum(f"'{name}' is not listed" in w for w in warned) == 1, warned
    assert any("front-matter" in w for w in warned)
    with pytest.raises(BookError, match="lower-case letters a-z without accents"):
        library.get("Big-Book")


def test_numbers_with_thousands_separators() -> None:
    """'1,000 stars' was matched as "one point zero zero zero" (a child reading "one thousand"
    was marked wrong), French '1 000' (no-break space) as two numbers "un" "zéro", and '80e'
    as "quatre vingtsième"."""
    assert number_words("1,000", "en") == ["one", "thousand"]
    assert number_words("10,000", "en") == ["ten", "thousand"]
    assert number_words("1,000,000", "en") == ["one", "million"]
    assert number_words("1,000.5", "en") == ["one", "thousand", "point", "five"]
    assert number_words("1\u00a0000", "fr") == ["mille"]
    assert number_words("10\u202f000", "fr") == ["dix", "mille"]
    assert number_words("80e", "fr") == ["quatre", "vingtième"]
    assert number_words("200e", "fr") == ["deux", "centième"]
    # In French a single comma is the decimal one.
    assert number_words("3,5", "fr") == ["trois", "virgule", "cinq"]
    page = tokenize("They saw 1,000 stars, 2, 3 and 4.", "en")
    assert [t.text for t in page.tokens] == ["They", "saw", "1,000", "stars", "2", "3", "and",
                                             "4"]
    assert page.keys()[2:5] == ["one", "thousand", "stars"]
    page = tokenize("Il y a 1\u00a0000 étoiles.", "fr")
    assert [t.text for t in page.tokens] == ["Il", "y", "a", "1\u00a0000", "étoiles"]
    assert page.keys()[3:] == ["mille", "etoiles"]


def _score_of(text: str, heard: str, lang: str) -> tuple[int, int]:
    """(words correct, words) when a child reads `text` aloud and `heard` is recognised."""
    page = tokenize(text, lang)
    words = [RecognizedWord(w, 0.5 + 0.4 * i, 0.8 + 0.4 * i)
             for i, w in enumerate(heard.split())]
    result = score(page, Aligner(page).update(Hypothesis(words, 0.5 + 0.4 * len(words)),
                                              finished=True))
    return result.words_correct, result.words_total


def test_french_thousands_grouped_with_a_plain_space() -> None:
    """'Il y a 1 000 étoiles.' typed with an ordinary space (as most French text is) was two
    numbers, "un" and "zéro": a child reading "mille" was marked wrong twice."""
    assert number_words("1 000", "fr") == ["mille"]
    assert number_words("12 345 678", "fr") == [
        "douze", "millions", "trois", "cent", "quarante", "cinq", "mille", "six", "cent",
        "soixante", "dix", "huit"]
    assert number_words("2 500,5", "fr") == ["deux", "mille", "cinq", "cents", "virgule",
                                             "cinq"]
    assert number_words("1 000e", "fr") == ["millième"]
    text = "Il y a 1 000 étoiles et 250 000 lucioles."
    page = tokenize(text, "fr")
    assert [t.text for t in page.tokens] == ["Il", "y", "a", "1 000", "étoiles", "et",
                                             "250 000", "lucioles"]
    for tok in page.tokens:  # the text shown is the book's, space included
        assert text[tok.start:tok.end] == tok.text
    assert page.keys() == ["il", "y", "a", "mille", "etoiles", "et", "deux", "cent",
                           "cinquante", "mille", "lucioles"]
    assert match_keys("1 000 étoiles", "fr") == ["mille", "etoiles"]
    assert _score_of("Il y a 1 000 étoiles.", "il y a mille étoiles", "fr") == (5, 5)
    # The no-break spaces still group, alone or mixed with plain ones.
    assert number_words("1\u202f000 000", "fr") == ["un", "million"]


@pytest.mark.parametrize(("text", "shown"), [
    # A year (4 digits) then a count: two numbers ("deux mille vingt-quatre, cent").
    ("En 2024 100 enfants", ["En", "2024", "100", "enfants"]),
    ("En 2024 100 000 enfants", ["En", "2024", "100 000", "enfants"]),
    # Groups of other than 3 digits: a telephone number, a count, a score.
    ("Appelle le 01 23 45 67 89", ["Appelle", "le", "01", "23", "45", "67", "89"]),
    ("Il compte 10 20 30", ["Il", "compte", "10", "20", "30"]),
    ("Les 3 1000 fois", ["Les", "3", "1000", "fois"]),
    # Two spaces, or a line break, between the groups.
    ("Il y a 1  000 étoiles", ["Il", "y", "a", "1", "000", "étoiles"]),
    ("Il y a 1\n000 étoiles", ["Il", "y", "a", "1", "000", "étoiles"]),
])
def test_french_plain_space_groups_only_what_reads_as_one_number(text: str,
                                                                   shown: list[str]) -> None:
    assert [t.text for t in tokenize(text, "fr").tokens] == shown


def test_english_thousands_stay_comma_grouped() -> None:
    """English groups thousands with a comma; a plain space still separates two numbers
    ("1 000" there is "one", "zero"), and "1,000" is one number as before."""
    assert [t.text for t in tokenize("They saw 1 000 stars.", "en").tokens] == [
        "They", "saw", "1", "000", "stars"]
    assert tokenize("They saw 1,000 stars.", "en").keys() == ["they", "saw", "one",
                                                             "thousand", "stars"]
    assert _score_of("They saw 1,000 stars.", "they saw one thousand stars", "en") == (4, 4)


def test_sentences_keep_their_punctuation_and_abbreviations_do_not_end_them() -> None:
    """'Together' and the tutor read a sentence aloud: French questions lost their '?' (the
    space before it ended the text there), so the robot read them flat, and "Mr. Fox ran."
    was two sentences, "Mr." read alone, then "Your turn!"."""
    page = tokenize("« Pourquoi restes-tu éveillée si tard ? » demande Léa.\n"
                    "« Merci, canard ! » dit M. Dupont.", "fr")
    assert [page.sentence_text(i) for i in range(page.sentence_count)] == [
        "Pourquoi restes-tu éveillée si tard ?", "demande Léa.", "Merci, canard !",
        "dit M. Dupont."]
    page = tokenize("Mr. Fox ran to Dr. Owl. He stopped... Then he sat.", "en")
    assert [page.sentence_text(i) for i in range(page.sentence_count)] == [
        "Mr. Fox ran to Dr. Owl.", "He stopped...", "Then he sat."]
    assert [t.text for t in page.tokens if t.sentence_end] == ["Owl", "stopped", "sat"]


def test_billions_are_read_as_such() -> None:
    """'La Terre a 4 500 000 000 ans' (now one number in French) was expected as 'quatre mille
    cinq cents millions': a child reading 'quatre milliards cinq cents millions' was marked
    wrong on two words; English 1,000,000,000 was 'one thousand million', not 'one billion'."""
    assert number_words("4 500 000 000", "fr") == [
        "quatre", "milliards", "cinq", "cents", "millions"]
    assert number_words("1 000 000 000", "fr") == ["un", "milliard"]
    assert number_words("1 000 000 000 000", "fr") == ["mille", "milliards"]
    assert number_words("2 000 000e", "fr") == ["deux", "millionième"]
    assert number_words("3 000 000 000e", "fr") == ["trois", "milliardième"]
    assert number_words("999 999 999", "fr")[-4:] == ["quatre", "vingt", "dix", "neuf"]
    assert number_words("1,000,000,000", "en") == ["one", "billion"]
    assert number_words("2,000,000,005", "en") == ["two", "billion", "five"]
    assert number_words("1,000,000", "en") == ["one", "million"]
    assert _score_of("La Terre a 4 500 000 000 ans.",
                     "la terre a quatre milliards cinq cents millions ans", "fr") == (5, 5)


@pytest.mark.parametrize(("digits", "lang", "words"), [
    # Milliards in French; "trois mille millions" before.
    ("1 000 000 000", "fr", "un milliard"),
    ("3 000 000 000", "fr", "trois milliards"),
    ("2 500 000 000", "fr", "deux milliards cinq cents millions"),
    ("200 000 000 000", "fr", "deux cents milliards"),
    ("1 000 000 000 000", "fr", "mille milliards"),
    ("1 000 000 000e", "fr", "milliardième"),
    ("2 000 000e", "fr", "deux millionième"),
    # Billions (short scale) in English; "three thousand million" before.
    ("1,000,000,000", "en", "one billion"),
    ("3,000,000,000", "en", "three billion"),
    ("2,500,000,000", "en", "two billion five hundred million"),
    ("1,000,000,000,000", "en", "one trillion"),
    # French plurals: cent(s) and vingt(s) take an s when they end the number and are
    # multiplied, not before "mille" (invariable); million(s) and milliard(s) are nouns.
    ("200", "fr", "deux cents"),
    ("201", "fr", "deux cent un"),
    ("80", "fr", "quatre vingts"),
    ("81", "fr", "quatre vingt un"),
    ("2000", "fr", "deux mille"),
    ("200 000", "fr", "deux cent mille"),
    ("80 000", "fr", "quatre vingt mille"),
    ("280 000", "fr", "deux cent quatre vingt mille"),
    ("1 000 000", "fr", "un million"),
    ("2 000 000", "fr", "deux millions"),
    ("200 000 000", "fr", "deux cents millions"),
    ("80 000 000", "fr", "quatre vingts millions"),
    # Zeros after the decimal comma are said ("trois virgule cinq" before).
    ("3,05", "fr", "trois virgule zéro cinq"),
    ("12,007", "fr", "douze virgule zéro zéro sept"),
    ("3,50", "fr", "trois virgule cinquante"),
    ("3,0", "fr", "trois virgule zéro"),
])
def test_large_numbers_and_french_plurals(digits: str, lang: str, words: str) -> None:
    assert number_words(digits, lang) == words.split()


@pytest.mark.parametrize(("text", "lang", "said"), [
    # espeak-ng read this as one number ("deux millions vingt-quatre mille cent"); the page
    # has two tokens, "2024" and "100".
    ("en 2024 100 enfants", "fr", ["en", "deux mille vingt-quatre", "cent", "enfants"]),
    ("Le 2e jour, 1 000 étoiles.", "fr", ["Le", "deuxième", "jour", "mille", "étoiles"]),
    ("l'arbre a 81 ans", "fr", ["l'arbre", "a", "quatre-vingt-un", "ans"]),
    ("H2O", "fr", ["H", "deux", "O"]),
    ("They saw 1,000 stars on the 21st of May 1984.", "en",
     ["They", "saw", "one thousand", "stars", "on", "the", "twenty first", "of", "May",
      "nineteen eighty four"]),
])
def test_what_the_robot_says_is_what_the_page_expects(text: str, lang: str,
                                                      said: list[str]) -> None:
    """"Read to me" gave the page text to espeak-ng, which reads numbers its own way; the
    robot now says each number token's words, and every token is located in what it says."""
    page = tokenize(text, lang)
    spoken = page.spoken()
    assert spoken.tokens == [t.index for t in page.tokens]
    assert [spoken.text[a:b] for a, b in spoken.spans] == said
    for tok, (a, b) in zip(page.tokens, spoken.spans, strict=True):
        # The words said are the token's own words (what the child is expected to read).
        assert match_keys(spoken.text[a:b], lang) == [
            w.key for w in page.words if w.token == tok.index]
    assert "H deux O" in tokenize("H2O", "fr").spoken().text  # not "HdeuxO"


def test_a_sentence_and_a_phrase_are_said_as_the_page_reads_them() -> None:
    from passeur.reading.text import speakable

    page = tokenize("Il a 3 ans. En 2024 100 enfants lisent !", "fr")
    start, end = page.sentence_span(1)
    assert page.text[start:end] == page.sentence_text(1) == "En 2024 100 enfants lisent !"
    spoken = page.spoken(start, end)
    assert spoken.text == "En deux mille vingt-quatre cent enfants lisent !"
    assert spoken.tokens == [4, 5, 6, 7, 8]
    assert [spoken.text[a:b] for a, b in spoken.spans][1:3] == ["deux mille vingt-quatre",
                                                                "cent"]
    # The tutor naming a word of the page ("1er", "2e") says it as the page reads it.
    assert speakable("Ce mot se lit « 2e ».", "fr") == "Ce mot se lit « deuxième »."
    assert speakable("Say 21st.", "en") == "Say twenty first."
    assert speakable("고양이 2마리", "ko") == "고양이 2마리"  # no number words: as written


@pytest.mark.parametrize(("text", "lang", "shown", "words"), [
    # French times: one word shown, said as a reader says them (hours and minutes feminine).
    ("14:30", "fr", "14:30", "quatorze heures trente"),
    ("14h30", "fr", "14h30", "quatorze heures trente"),
    ("14 h 30", "fr", "14 h 30", "quatorze heures trente"),
    ("10h", "fr", "10h", "dix heures"),
    ("10 h", "fr", "10 h", "dix heures"),
    ("1h05", "fr", "1h05", "une heure cinq"),
    ("21h01", "fr", "21h01", "vingt et une heures une"),
    ("14h00", "fr", "14h00", "quatorze heures"),
    # English times.
    ("2:30", "en", "2:30", "two thirty"),
    ("2:05", "en", "2:05", "two oh five"),
    ("3:00", "en", "3:00", "three o'clock"),
    ("12:15", "en", "12:15", "twelve fifteen"),
    ("14:00", "en", "14:00", "fourteen hundred"),
    # Percentages, with or without a (no-break) space.
    ("50 %", "fr", "50 %", "cinquante pour cent"),
    ("50\u00a0%", "fr", "50\u00a0%", "cinquante pour cent"),
    ("3,5 %", "fr", "3,5 %", "trois virgule cinq pour cent"),
    ("50%", "en", "50%", "fifty percent"),
])
def test_times_and_percentages_are_expected_as_a_reader_says_them(
        text: str, lang: str, shown: str, words: str) -> None:
    """"14:30" was expected as "quatorze trente", "10h30" as "dix h trente", "50 %" as
    "cinquante": a child reading "quatorze heures trente" or "cinquante pour cent" was marked
    wrong, and "Read to me" said "dix ache trente"."""
    page = tokenize(f"Il est {text} ici." if lang == "fr" else f"It is {text} here.", lang)
    token = page.tokens[2]
    assert token.text == shown  # one word on the page, shown as written
    assert [page.words[i].lex for i in page.word_indices_of_token(2)] == \
        [w for w in words.replace("-", " ").split()]
    assert page.spoken().text.split(" ", 2)[2].startswith(words)
    assert number_words(text, lang) == words.replace("-", " ").split()


@pytest.mark.parametrize(("text", "lang", "shown"), [
    ("14 habitants", "fr", ["14", "habitants"]),  # an h starting a word is no time
    ("1:23:45", "en", ["1", "23", "45"]),  # not a time of day
    ("25:00", "en", ["25", "00"]),
    ("9:5", "en", ["9", "5"]),
    ("14:30 50%", "ko", ["14", "30", "50"]),  # Korean pages: as before
])
def test_what_is_not_a_time_stays_as_before(text: str, lang: str, shown: list[str]) -> None:
    assert [t.text for t in tokenize(text, lang).tokens] == shown


def test_common_abbreviations_are_expected_as_words() -> None:
    """"M. Dupont" was expected as "m dupont" (and said "èm Dupont"), "Mme" as "mme": a
    child reading "monsieur", "madame" was marked wrong."""
    text = "M. Dupont et Mme Li, Mlle Roy, Dr Martin et MM. Roy vont à St-Malo, etc. La lettre M."
    page = tokenize(text, "fr")
    assert page.keys() == [
        "monsieur", "dupont", "et", "madame", "li", "mademoiselle", "roy", "docteur", "martin",
        "et", "messieurs", "roy", "vont", "a", "saint", "malo", "et", "cetera", "la", "lettre",
        "m"]  # "M" alone (no name after it) is the letter
    for tok in page.tokens:  # the text shown is the book's
        assert text[tok.start:tok.end] == tok.text
    assert [page.sentence_text(i) for i in range(page.sentence_count)] == [
        "M. Dupont et Mme Li, Mlle Roy, Dr Martin et MM. Roy vont à St-Malo, etc.",
        "La lettre M."]
    assert page.spoken().text == (
        "monsieur Dupont et madame Li, mademoiselle Roy, docteur Martin et messieurs Roy vont "
        "à saint-Malo, et cetera. La lettre M.")
    assert tokenize("la lettre M et le m", "fr").keys() == ["la", "lettre", "m", "et", "le", "m"]
    page = tokenize("Mr. Fox met Mrs Owl, Ms. Lee and Dr. Who on Mt. Fuji, near St. John.", "en")
    assert page.keys() == ["mister", "fox", "met", "missus", "owl", "miz", "lee", "and",
                           "doctor", "who", "on", "mount", "fuji", "near", "st", "john"]
    # St. is Street or Saint: left as written, a reader may say either.
    assert page.spoken().text == ("mister Fox met missus Owl, miz Lee and doctor Who on mount "
                                  "Fuji, near St. John.")
    assert page.sentence_count == 1


def test_a_child_saying_times_and_titles_is_right() -> None:
    assert _score_of("Il part à 14h30 avec M. Dupont.",
                     "il part à quatorze heures trente avec monsieur dupont", "fr") == (7, 7)
    assert _score_of("Il y a 50 % de pommes.", "il y a cinquante pour cent de pommes",
                     "fr") == (6, 6)
    assert _score_of("At 3:00 Mr. Fox ate 50% of it.",
                     "at three o'clock mister fox ate fifty percent of it", "en") == (8, 8)


def test_lower_case_units_end_a_french_sentence_titles_do_not() -> None:
    """'MM.' (messieurs) joined the abbreviations whose full stop ends no sentence, and so did
    'mm.' (millimetres): 'Le trou fait 5 mm. Il est petit.' became one sentence (Together mode
    modelled both at once, the tutor read both). Lower-case 'm.' and 'mm.' are units."""
    page = tokenize("Le trou fait 5 mm. Il est petit. Il a 3 m. MM. Li et M. Roy rient.", "fr")
    texts = [page.sentence_text(i) for i in range(page.sentence_count)]
    assert texts == ["Le trou fait 5 mm.", "Il est petit.", "Il a 3 m.",
                     "MM. Li et M. Roy rient."]
    assert [t.said for t in page.tokens if t.text in ("MM", "M")] == ["messieurs", "monsieur"]


def test_a_book_whose_extension_is_in_capitals_is_a_book(tmp_path: Path) -> None:
    """'story.MD' or 'fable.TXT' (as some editors save them) were listed among the known books
    but could not be opened: the log and `passeur read` said "unknown book 'story' (known:
    fable, story)" and the reader page did not list them."""
    front = "---\ntitle: T\nlanguage: en\n---\nThe cat sat.\n"
    (tmp_path / "story.MD").write_text(front, encoding="utf-8")
    (tmp_path / "fable.TXT").write_text(front.replace("cat", "*cat*"), encoding="utf-8")
    library = Library(tmp_path)
    assert [b.id for b in library.books()] == ["fable", "story"]
    assert library.get("fable").pages == ["The *cat* sat."]  # a .txt book: shown as written
    assert library.get("story").pages == ["The cat sat."]


@pytest.mark.parametrize("line, title", [
    ("title: Le lion et le rat : une fable", "Le lion et le rat : une fable"),
    ("title: Sam: the Moon   # the English one", "Sam: the Moon"),
    ("title: #1 Best Friends", "#1 Best Friends"),
    ("title: Yes", "Yes"),
    ("title: [Sam]", "[Sam]"),
    ('title: "Quoted: fine"', "Quoted: fine"),
])
def test_a_title_is_the_text_written(line: str, title: str) -> None:
    """A French title written with its typography ('Le lion et le rat : une fable') made the
    front-matter invalid YAML: the book was left out of the reader page, the log showing a
    YAML parser error. 'title: #1 Best Friends' was listed as 'None', 'title: Yes' as 'True',
    'title: [Sam]' as "['Sam']"."""
    book = parse_book(f"---\n{line}\nlanguage: fr   # fr | en\nlevel: 2\n---\nLe chat.\n", "x")
    assert (book.title, book.lang, book.level) == (title, "fr", 2)


def test_front_matter_that_is_not_key_value_lines_is_still_refused() -> None:
    with pytest.raises(BookError, match="not valid YAML"):
        parse_book("---\ntitle: T\n  bad: indent: x\nlanguage: en\n---\nThe cat.\n", "x")


def test_a_book_edited_while_the_robot_runs_is_served_as_it_now_is(tmp_path: Path) -> None:
    """A librarian fixing a typo in a book (or adding a page, or removing the book) saw no
    change on the reader page until the robot restarted: the first reading of each book was
    kept for ever."""
    import os

    book = tmp_path / "story.md"
    book.write_text("---\ntitle: Story\nlanguage: en\n---\nThe cta sat.\n", encoding="utf-8")
    library = Library(tmp_path)
    assert library.get("story").pages == ["The cta sat."]
    assert library.get("story") is library.get("story")  # unchanged: not read again
    book.write_text("---\ntitle: Story\nlanguage: en\n---\nThe cat sat.\n---page---\nIt slept.\n",
                    encoding="utf-8")
    os.utime(book, ns=(book.stat().st_atime_ns, book.stat().st_mtime_ns + 10**9))
    assert library.get("story").pages == ["The cat sat.", "It slept."]
    book.unlink()
    with pytest.raises(BookError, match="unknown book 'story'"):
        library.get("story")
