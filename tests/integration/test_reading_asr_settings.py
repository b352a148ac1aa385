"""The pocketsphinx backend's decoder settings (no audio needed: nothing here is skipped
without espeak-ng)."""

from __future__ import annotations

import pytest

from passeur.reading.asr import create_backend


def test_decoder_settings_reach_pocketsphinx_and_bad_ones_are_refused() -> None:
    """topn and the second pass's language weight are the page decoder's (defaults 32 and
    6, docs/reading.md); values pocketsphinx would misuse fail when the backend is made."""
    with pytest.raises(ValueError, match="topn"):
        create_backend("pocketsphinx", {"topn": 0})
    with pytest.raises(ValueError, match="fwdflat_lw"):
        create_backend("pocketsphinx", {"fwdflat_lw": 0.0})
    for bad in (8.5, True, "8"):  # not silently cut to 8, taken as 1, or a bare TypeError
        with pytest.raises(ValueError, match="whole number"):
            create_backend("pocketsphinx", {"topn": bad})
    with pytest.raises(ValueError, match="fwdflat_lw"):
        create_backend("pocketsphinx", {"fwdflat_lw": "4"})
    for bad in (1, "yes", None):
        with pytest.raises(ValueError, match="sentence_starts"):
            create_backend("pocketsphinx", {"sentence_starts": bad})
    for key in ("topn", "fwdflatlw"):  # not around the range checks
        with pytest.raises(ValueError, match="decoder_options"):
            create_backend("pocketsphinx", {"decoder_options": {key: 4}})
    rec = create_backend("pocketsphinx").recognizer("en", ["tom", "has", "a"])
    try:
        assert rec._decoder.config["topn"] == 32
        assert rec._decoder.config["fwdflatlw"] == pytest.approx(6.0)
    finally:
        rec.close()
    rec = create_backend("pocketsphinx", {"topn": 8, "fwdflat_lw": 8.5}).recognizer(
        "en", ["tom", "has", "a"])
    try:
        assert rec._decoder.config["topn"] == 8
        assert rec._decoder.config["fwdflatlw"] == pytest.approx(8.5)
    finally:
        rec.close()


def test_near_misses_begin_like_their_page_word_and_are_checked() -> None:
    """`near_misses: K` gives each page content word the K most frequent generic English
    words that begin like it (first two letters and first phone), never a page or function
    word; bad values fail when the backend is made."""
    for bad in (-1, 21, 2.5, True, "3"):
        with pytest.raises(ValueError, match="near_misses"):
            create_backend("pocketsphinx", {"near_misses": bad})
    for bad_share in (0.0, 1.5, "0.1"):
        with pytest.raises(ValueError, match="near_miss_share"):
            create_backend("pocketsphinx", {"near_miss_share": bad_share})
    backend = create_backend("pocketsphinx", {"near_misses": 3})
    page = ["the", "boat", "and", "the", "basket", "by", "a", "bad", "ox", "sleepy"]
    near = backend._near_misses("en", backend.models["en"], page)  # type: ignore[attr-defined]
    assert set(near) == {"boat", "basket", "bad", "sleepy"}  # content words of 3+ letters
    assert all(len(misses) == 3 for misses in near.values())
    for target, misses in near.items():
        assert all(m[:2] == target[:2] and m not in page for m in misses), near
        # not the word with an ending or its beginning: those sound like the word itself
        assert not any(m.startswith(target) or target.startswith(m) for m in misses), near
    assert "book" in near["boat"] and "back" in near["basket"] and "sleep" not in near["sleepy"]
    rec = backend.recognizer("en", page)
    try:
        assert rec.lm_path is not None
        arpa = rec.lm_path.read_text(encoding="utf-8")
        assert "\tthe book" in arpa and "\tbook boat" in arpa
    finally:
        rec.close()
    assert create_backend("pocketsphinx")._near_misses(  # type: ignore[attr-defined]
        "en", backend.models["en"], page) == {}  # off by default


def test_the_page_model_expects_utterances_to_start_sentences_unless_told_not_to() -> None:
    """`sentence_starts` (on by default) puts each sentence's first words after <s> in the
    page model the decoder reads; off, only the page's first word is expected there."""
    text = "Tom has a boat. One morning he sails."
    words = ["tom", "has", "a", "boat", "one", "morning", "he", "sails"]

    def after_start(settings: dict[str, object]) -> dict[str, float]:
        rec = create_backend("pocketsphinx", settings).recognizer("en", words, text)
        try:
            assert rec.lm_path is not None
            out = {}
            for line in rec.lm_path.read_text(encoding="utf-8").splitlines():
                fields = line.split("\t")
                if len(fields) >= 2 and fields[1].startswith("<s> "):
                    out[fields[1]] = float(fields[0])
            return out
        finally:
            rec.close()

    on = after_start({})
    assert on["<s> one"] == on["<s> tom"] and "<s> one morning" in on
    off = after_start({"sentence_starts": False})
    assert off["<s> one"] < off["<s> tom"] and "<s> one morning" not in off
    # A language the page tokeniser does not know gets no sentence starts (and no error).
    from passeur.reading.asr_pocketsphinx import sentence_starts
    assert sentence_starts(text, "de", words) == []
