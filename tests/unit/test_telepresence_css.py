"""The focus indicator of the telepresence pages is visible: at least 3:1 against the page and
panel backgrounds, in the normal and the high-contrast theme (WCAG 1.4.11), and it is the
indicator every focusable control gets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = Path(__file__).resolve().parents[2] / "src" / "passeur" / "web" / "common" / "style.css"


def _block(text: str, selector: str) -> dict[str, str]:
    found = re.search(re.escape(selector) + r"\s*\{(.*?)\}", text, re.S)
    assert found, f"no '{selector}' block in style.css"
    return dict(re.findall(r"--([a-z-]+)\s*:\s*(#[0-9a-fA-F]{6})", found.group(1)))


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_contrast_formula() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#ff9f1a", "#fdfdfb") < 3.0  # the old ring, for the record


@pytest.mark.parametrize("theme", [":root", "html.contrast"])
def test_focus_ring_contrasts_with_the_backgrounds(theme: str) -> None:
    text = CSS.read_text(encoding="utf-8")
    base = _block(text, ":root")
    colours = {**base, **_block(text, theme)}
    for background in ("bg", "panel"):
        ratio = contrast(colours["focus"], colours[background])
        assert ratio >= 3.0, f"{theme}: focus {colours['focus']} on {background} " \
                             f"{colours[background]} is {ratio:.2f}:1"


def test_every_focusable_control_gets_the_ring() -> None:
    text = CSS.read_text(encoding="utf-8")
    rule = re.search(r"([^{}]*:focus-visible[^{}]*)\{([^}]*)\}", text)
    assert rule, "no :focus-visible rule"
    selectors, body = rule.group(1), rule.group(2)
    for needed in (":focus-visible", "button:focus", "select:focus", "input:focus", "a:focus"):
        assert needed in selectors
    width = re.search(r"outline:\s*(\d+)px\s+solid\s+var\(--focus\)", body)
    assert width and int(width.group(1)) >= 2, body
