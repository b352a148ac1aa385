"""Static checks of the telepresence pages: every string in French and English, every
referenced key exists, no external resources (no CDN), every button labelled."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "src" / "passeur" / "web"
PAGES = ["pilot", "staff", "spectator"]


def _catalogues() -> dict[str, set[str]]:
    text = (WEB / "common" / "i18n.js").read_text(encoding="utf-8")
    fr_start, en_start = text.index("    fr: {"), text.index("    en: {")
    end = text.index("  const SUPPORTED")
    key = re.compile(r'^\s*"([a-z_.]+)":', re.M)
    return {"fr": set(key.findall(text[fr_start:en_start])),
            "en": set(key.findall(text[en_start:end]))}


def test_french_and_english_have_the_same_keys() -> None:
    cat = _catalogues()
    assert cat["fr"] and cat["fr"] == cat["en"], cat["fr"] ^ cat["en"]


@pytest.mark.parametrize("page", PAGES)
def test_every_key_used_exists_and_nothing_external(page: str) -> None:
    keys = _catalogues()["en"]
    html = (WEB / page / "index.html").read_text(encoding="utf-8")
    js = "".join(p.read_text(encoding="utf-8") for p in (WEB / page).glob("*.js"))
    used = set(re.findall(r'data-i18n(?:-label|-title|-placeholder|-alt)?="([a-z_.]+)"', html))
    used |= set(re.findall(r'\bt\("([a-z_.]*[a-z_])"', js))  # not dynamic prefixes
    assert used and not used - keys, used - keys
    for ref in re.findall(r'(?:src|href)="([^"#]+)"', html):
        assert ref.startswith("/"), f"{page}: external resource {ref}"
    assert "http://" not in html and "https://" not in html
    # Every <button> has text or a translated label.
    for button in re.findall(r"<button[^>]*>(.*?)</button>", html, re.S):
        assert button.strip(), f"{page}: a button without a label"


def test_staff_code_validity_choices_are_ones_the_server_accepts() -> None:
    from passeur.telepresence.access import MIN_CODE_WINDOW_S, AccessPolicy

    html = (WEB / "staff" / "index.html").read_text(encoding="utf-8")
    select = html[html.index('<select id="minutes">'):]
    minutes = [float(m) for m in re.findall(r'<option value="([^"]+)"',
                                            select[:select.index("</select>")])]
    assert minutes and all(MIN_CODE_WINDOW_S <= m * 60 <= AccessPolicy().max_code_window_s
                           for m in minutes), minutes
