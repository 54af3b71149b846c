from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.text_split import (
    Measure,
    code_points,
    split_text,
    utf8_bytes,
    utf16_units,
)

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # one glyph, five code points, 8 units
FLAG_DE, FLAG_FR = "\U0001f1e9\U0001f1ea", "\U0001f1eb\U0001f1f7"
THUMBS_UP_DARK = "\U0001f44d\U0001f3fd"


def rejoins(text: str, parts: list[str]) -> bool:
    """``text`` is the parts in order with only whitespace around and between them."""
    pattern = r"\s*" + r"\s*".join(re.escape(part) for part in parts) + r"\s*"
    return re.fullmatch(pattern, text, re.DOTALL) is not None


def test_a_text_within_the_limit_comes_back_untouched() -> None:
    assert split_text("  as is \n", 9) == ["  as is \n"]


def test_units_count_as_telegram_does() -> None:
    assert utf16_units("a\U0001f600") == 3
    assert code_points("a\U0001f600") == 2
    assert utf8_bytes("a\U0001f600") == 5


def test_paragraph_break_is_preferred_over_line_and_space() -> None:
    text = "first paragraph\n\nsecond line\nthird"
    assert split_text(text, 30) == ["first paragraph", "second line\nthird"]


def test_line_break_when_no_paragraph_break_in_the_back_half() -> None:
    assert split_text("ab\n\ncdefghij klm\nnopq", 16) == ["ab\n\ncdefghij klm", "nopq"]


def test_space_when_no_line_break() -> None:
    assert split_text("alpha beta gamma delta", 12) == ["alpha beta", "gamma delta"]


def test_hard_cut_in_a_word_longer_than_the_limit() -> None:
    assert split_text("abcdefghij", 4) == ["abcd", "efgh", "ij"]


def test_emoji_never_straddles_the_utf16_limit() -> None:
    text = "a" * 4095 + "\U0001f600" + "b"
    assert split_text(text, 4096, utf16_units) == ["a" * 4095, "\U0001f600b"]


def test_all_emoji_text_fills_parts_to_the_unit() -> None:
    parts = split_text("\U0001f600" * 2049, 4096, utf16_units)
    assert [utf16_units(part) for part in parts] == [4096, 2]


@pytest.mark.parametrize("glyph", [FAMILY, FLAG_FR, THUMBS_UP_DARK, "e\u0301", "1\ufe0f\u20e3"])
def test_a_hard_cut_keeps_a_glyph_together(glyph: str) -> None:
    text = "x" * 9 + glyph + "y" * 9
    parts = split_text(text, 10 + len(glyph) // 2)
    assert any(glyph in part for part in parts), parts
    assert "".join(parts) == text


def test_two_flags_in_a_row_split_between_flags() -> None:
    assert split_text("ab" + FLAG_DE + FLAG_FR, 5) == ["ab" + FLAG_DE, FLAG_FR]


def test_surrogate_pair_held_as_two_code_points_stays_together() -> None:
    # A str decoded leniently can carry a pair as two code points.
    pair = "\ud83d\ude00"
    assert split_text("abc" + pair + "d", 4, utf16_units) == ["abc", pair + "d"]


def test_long_whitespace_only_text_has_no_parts() -> None:
    assert split_text(" \n" * 10, 5) == []


def test_limit_smaller_than_one_character_is_refused() -> None:
    with pytest.raises(ValueError, match="smaller than the character"):
        split_text("\U0001f600\U0001f600", 1, utf16_units)


PIECES = st.sampled_from(
    ["a", "bc", " ", "\n", "\n\n", "\t", "\U0001f600", FAMILY, FLAG_DE, "e\u0301", "\u00e9"]
)
TEXTS = st.lists(PIECES | st.characters(), max_size=120).map("".join)
MEASURES = st.sampled_from([code_points, utf16_units, utf8_bytes])


@given(text=TEXTS, limit=st.integers(min_value=4, max_value=40), measure=MEASURES)
def test_parts_fit_and_rejoin_to_the_text(text: str, limit: int, measure: Measure) -> None:
    parts = split_text(text, limit, measure)
    assert all(measure(part) <= limit for part in parts)
    assert rejoins(text, parts)
    if measure(text) <= limit:
        assert parts == [text]
    else:
        assert all(part.strip() for part in parts)
        assert all(not part[-1].isspace() for part in parts[:-1])


@given(pieces=st.lists(PIECES, max_size=80), limit=st.integers(min_value=8, max_value=40))
def test_cuts_never_fall_inside_a_glyph(pieces: list[str], limit: int) -> None:
    """With every glyph within the limit, no cut splits one (pieces are whole glyphs)."""
    text, position = "".join(pieces), 0
    inside_glyphs: set[int] = set()
    for piece in pieces:
        if piece in (FAMILY, FLAG_DE, "e\u0301"):
            inside_glyphs.update(range(position + 1, position + len(piece)))
        position += len(piece)
    parts = split_text(text, limit, utf16_units)
    match = re.fullmatch(
        r"\s*" + r"\s*".join(f"({re.escape(part)})" for part in parts) + r"\s*", text, re.DOTALL
    )
    assert match is not None
    cuts = {index for group in range(1, len(parts) + 1) for index in match.span(group)}
    assert not cuts & inside_glyphs
