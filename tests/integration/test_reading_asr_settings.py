"""The pocketsphinx backend's decoder settings (no audio needed: nothing here is skipped
without espeak-ng)."""

from __future__ import annotations

import pytest

from passeur.reading.asr import create_backend


def test_decoder_settings_reach_pocketsphinx_and_bad_ones_are_refused() -> None:
    """topn and the second pass's language weight are the page decoder's (defaults 32 and
    8.5, docs/reading.md); values pocketsphinx would misuse fail when the backend is made."""
    with pytest.raises(ValueError, match="topn"):
        create_backend("pocketsphinx", {"topn": 0})
    with pytest.raises(ValueError, match="fwdflat_lw"):
        create_backend("pocketsphinx", {"fwdflat_lw": 0.0})
    for bad in (8.5, True, "8"):  # not silently cut to 8, taken as 1, or a bare TypeError
        with pytest.raises(ValueError, match="whole number"):
            create_backend("pocketsphinx", {"topn": bad})
    with pytest.raises(ValueError, match="fwdflat_lw"):
        create_backend("pocketsphinx", {"fwdflat_lw": "4"})
    for key in ("topn", "fwdflatlw"):  # not around the range checks
        with pytest.raises(ValueError, match="decoder_options"):
            create_backend("pocketsphinx", {"decoder_options": {key: 4}})
    rec = create_backend("pocketsphinx").recognizer("en", ["tom", "has", "a"])
    try:
        assert rec._decoder.config["topn"] == 32
        assert rec._decoder.config["fwdflatlw"] == pytest.approx(8.5)
    finally:
        rec.close()
    rec = create_backend("pocketsphinx", {"topn": 8, "fwdflat_lw": 6.0}).recognizer(
        "en", ["tom", "has", "a"])
    try:
        assert rec._decoder.config["topn"] == 8
        assert rec._decoder.config["fwdflatlw"] == pytest.approx(6.0)
    finally:
        rec.close()
