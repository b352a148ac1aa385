"""The reader page's focus ring is visible wherever it is drawn: at least 3:1 against the page,
the text and result panels, and the title bar (WCAG 1.4.11)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.unit.test_telepresence_css import contrast

CSS = Path(__file__).resolve().parents[2] / "src" / "passeur" / "web" / "reader" / "reader.css"


def _colour(text: str, selector: str, prop: str) -> str:
    block = re.search(r"(?:^|\n|\})\s*" + re.escape(selector) + r"\s*\{([^}]*)\}", text)
    assert block, f"no '{selector}' rule in reader.css"
    found = re.search(prop + r"\s*:[^;#]*#([0-9a-fA-F]{6}|[0-9a-fA-F]{3})\b", block.group(1))
    assert found, f"no {prop} colour in '{selector}'"
    digits = found.group(1)
    return "#" + (digits if len(digits) == 6 else "".join(c * 2 for c in digits))


def test_focus_ring_contrasts_with_every_background() -> None:
    text = CSS.read_text(encoding="utf-8")
    ring = _colour(text, ":focus-visible", "outline")
    page = re.search(r"--bg:\s*(#[0-9a-fA-F]{6})", text)
    assert page
    light = {"page": page.group(1), "text": _colour(text, ".page", "background"),
             "result": _colour(text, ".result", "background"),
             "practice": _colour(text, ".practice", "background")}
    for name, background in light.items():
        assert contrast(ring, background) >= 3.0, f"ring {ring} on the {name} {background}"
    bar_ring = _colour(text, ".bar :focus-visible", "outline-color")
    bar = _colour(text, ".bar", "background")
    assert contrast(bar_ring, bar) >= 3.0, f"ring {bar_ring} on the title bar {bar}"
    assert contrast("#d97706", light["result"]) < 3.0  # the old ring, for the record
