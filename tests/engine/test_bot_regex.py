"""The bot's regular expressions: refused when their matching cost has no small bound, and
the bound holds on the worst messages (``docs/bot.md``, "Regular expressions, safely")."""

from __future__ import annotations

import re
import time

import pytest

from engine.bot.regex_guard import (
    MAX_COST,
    MAX_MATCHED_CHARS,
    RegexCost,
    compile_guarded,
)
from engine.errors import ConfigError
from engine.line_texts.sections import parse_line_sections


@pytest.mark.parametrize(
    ("pattern", "cost"),
    [
        (r"доставк", 256),
        (r"(?:order|заказ)\s{0,3}#?\d{1,12}", 49_152),
        (r"^(?:order|заказ)\s*#?\d+", 263_168),
        (r"\A\d+$", 256),
        (r"(?:order|заказ)\s*+#?\d++", 1_024),
        (r"(?:срочно\s)?помогите", 512),
        (r"^a*a*b", 66_049),
    ],
)
def test_a_pattern_with_a_small_bound_is_accepted(pattern: str, cost: int) -> None:
    compiled, found = compile_guarded(pattern)
    assert compiled.flags & re.IGNORECASE
    assert found == cost


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(a|a)*b", "repeats a group, which can take exponential time"),
        (r"(ab)+", r"\(\[ab\]\+ rather than \(a\|b\)\+\)"),
        (r"(?:\d+\s?)+", "repeats a group"),
        (r"a*a*a*b", r"may take 4,345,495,808 steps on a 256-character message"),
        (r"a*a*b", r"may take 16,908,544 steps"),
        (r"(?:order|заказ)\s*#?\d+", "bound a repeat .* possessive .* anchor the pattern with"),
        (r"(?m)^a*a*a*b", "may take"),  # ^ anchors nothing with MULTILINE
        (r"(\w)\1", "uses back-references"),
        (r"(?=x)y", "uses look-arounds"),
        (r"(?<!x)y", "uses look-arounds"),
        (r"(?>a*)b", "uses atomic groups"),
        (r"(a)?(?(1)b|c)", "uses conditional groups"),
        (r"(", "is not a valid regular expression"),
        ("a" * 201, "is 201 characters long; at most 200"),
    ],
)
def test_a_pattern_without_a_small_bound_is_refused(pattern: str, reason: str) -> None:
    with pytest.raises(RegexCost, match=reason):
        compile_guarded(pattern)


def test_a_refused_regex_names_its_line_and_field() -> None:
    text = (
        "bot:\n  rules:\n    - match: {keywords: [a]}\n      answer: a\n"
        "    - match:\n        regex: 'a*a*a*b'\n      answer: b\n"
    )
    with pytest.raises(
        ConfigError,
        match=r"^l\.yaml:6: bot\.rules\.1\.match\.regex: Value error, the regex may take",
    ):
        parse_line_sections(text, "l.yaml")


def test_the_line_as_a_whole_has_a_budget() -> None:
    rule = "    - match: {{regex: '[a-z]{{0,60}}[a-z]{{0,60}}{index}'}}\n      answer: a\n"
    text = "bot:\n  rules:\n" + "".join(rule.format(index=index) for index in range(6))
    with pytest.raises(
        ConfigError,
        match=r"^l\.yaml:1: bot: Value error, the rules' regexes together may take 5,715,456 steps",
    ):
        parse_line_sections(text, "l.yaml")


@pytest.mark.parametrize(
    "pattern",
    [
        r"^a*a*a{0,29}b",  # anchored: two overlapping unbounded repeats and more
        r"[a-z]{0,60}[a-z]{0,60}1",  # unanchored: two overlapping bounded repeats
        r"^(?:a|a|a|a)(?:a|a|a|a)(?:a|a|a|a)(?:a|a|a|a)[a-z]*[a-z]{0,20}1",
    ],
)
def test_the_worst_accepted_patterns_stay_fast_on_the_worst_message(pattern: str) -> None:
    compiled, cost = compile_guarded(pattern)
    assert cost <= MAX_COST
    worst = "a" * MAX_MATCHED_CHARS  # matches every repeat, then fails at the end
    started = time.perf_counter()
    assert compiled.search(worst) is None
    # About 20 ms on the reference machine; a refused pattern (a*a*a*b) takes seconds. The
    # margin absorbs a machine shared with other test runs.
    assert time.perf_counter() - started < 1.0
