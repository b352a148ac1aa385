"""The espeak-ng binding sits behind the TextToSpeech interface; a missing or changed pyttsx3
gives a clear error naming what to install."""

from __future__ import annotations

import sys
import types

import pytest

from passeur.reading.exceptions import TTSError
from passeur.reading.tts import Synthesizer


def test_missing_binding_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import pyttsx3.drivers

    monkeypatch.setitem(sys.modules, "pyttsx3.drivers._espeak", None)  # import fails
    # ... also when an earlier test already imported it (the package keeps the attribute).
    monkeypatch.delattr(pyttsx3.drivers, "_espeak", raising=False)
    with pytest.raises(TTSError, match=r"pyttsx3==2\.99 and Debian libespeak-ng1"):
        Synthesizer().synthesize("Hello", "en")


def test_changed_private_api_names_the_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    import pyttsx3.drivers

    fake = types.ModuleType("pyttsx3.drivers._espeak")
    monkeypatch.setitem(sys.modules, "pyttsx3.drivers._espeak", fake)
    monkeypatch.setattr(pyttsx3.drivers, "_espeak", fake, raising=False)
    with pytest.raises(TTSError, match=r"lacks Initialize.*pyttsx3==2\.99"):
        Synthesizer().synthesize("Hello", "en")


def test_unknown_language() -> None:
    with pytest.raises(TTSError, match="no voice for language 'de'"):
        Synthesizer().synthesize("Hallo", "de")
