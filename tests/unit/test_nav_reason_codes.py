"""Every reason code the navigator can publish is one the pages translate, in both languages."""

from __future__ import annotations

import re
from pathlib import Path

from passeur.navigation.navigator_node import REASON_CODES

ROOT = Path(__file__).resolve().parents[2]
NODE = ROOT / "src" / "passeur" / "navigation" / "navigator_node.py"
PLANNER = ROOT / "src" / "passeur" / "navigation" / "planner.py"
I18N = ROOT / "src" / "passeur" / "web" / "common" / "i18n.js"


def test_codes_used_by_the_navigator_are_declared() -> None:
    source = NODE.read_text(encoding="utf-8")
    used = set(re.findall(r'self\._fail\([^)]*?,\s*"([a-z_]+)"\)', source, re.S))
    used |= set(re.findall(r'_set_state\("[a-z]+", "[^"]*", "([a-z_]+)"\)', source))
    used |= set(re.findall(r'PlanningError\(\s*"([a-z_]+)"', PLANNER.read_text("utf-8")))
    used |= set(re.findall(r'_reason_code = "([a-z_]+)"', source))
    assert used, "no code found: the patterns above no longer match the source"
    assert used <= set(REASON_CODES), sorted(used - set(REASON_CODES))


def test_pages_translate_every_code_in_french_and_english() -> None:
    text = I18N.read_text(encoding="utf-8")
    for code in REASON_CODES:
        assert text.count(f'"nav.reason.{code}"') == 2, code
