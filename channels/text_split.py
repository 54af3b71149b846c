"""Splitting a long text into parts a channel accepts, at the most natural boundary.

Channels count their limits differently: Telegram in UTF-16 code units (an emoji outside the
Basic Multilingual Plane is 2), others in code points or UTF-8 bytes. A ``Measure`` says how
long a string is in the channel's unit; ``split_text`` never lets a part exceed the limit in
that unit.

Policy, chosen so every part reads well and none is blank:

* A text within the limit is returned whole and untouched.
* Otherwise each part is cut at the last paragraph break (blank line) in the back half of
  what fits, else the last line break there, else the last whitespace, else hard at the limit
  (stepping back so a cut never falls inside a surrogate pair or before a combining mark,
  variation selector, skin-tone modifier or after a zero-width joiner).
* The whitespace run at a cut is dropped: it is the separator the reader would not see at the
  edge of a message anyway, and Telegram trims it (a blank part is refused as "message text is
  empty"). Hence ``text == w0 + parts[0] + w1 + parts[1] + ... + parts[-1] + wn`` where every
  ``w`` is whitespace, possibly empty.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

Measure = Callable[[str], int]

# Separators in order of preference; the first that occurs in the back half of a window wins.
_BOUNDARIES = ("\n\n", "\n")
_ZERO_WIDTH_JOINER = "\u200d"
_COMBINING_CATEGORIES = frozenset({"Mn", "Mc", "Me"})
# Variation selectors, skin-tone modifiers, emoji tag characters, supplementary selectors.
_MODIFIER_RANGES = ((0xFE00, 0xFE0F), (0x1F3FB, 0x1F3FF), (0xE0020, 0xE007F), (0xE0100, 0xE01EF))
# How far a hard cut may step back to keep a grapheme together before it gives up.
_MAX_GLUE_STEPS = 16


def code_points(text: str) -> int:
    """Length in Unicode code points (what ``len`` counts)."""
    return len(text)


def utf16_units(text: str) -> int:
    """Length in UTF-16 code units, as Telegram counts: characters above U+FFFF count 2."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def utf8_bytes(text: str) -> int:
    """Length in UTF-8 bytes."""
    return len(text.encode("utf-8", "surrogatepass"))


def split_text(text: str, limit: int, measure: Measure = code_points) -> list[str]:
    """Cut ``text`` into parts of at most ``limit`` units of ``measure`` (policy above).

    Returns ``[]`` for a text longer than the limit that is nothing but whitespace. Raises
    ``ValueError`` if a single character does not fit in ``limit``.
    """
    if measure(text) <= limit:
        return [text]
    parts: list[str] = []
    rest = text
    while measure(rest) > limit:
        cut = _cut_index(rest, _fitting_prefix_len(rest, limit, measure))
        head = rest[:cut].rstrip()
        if head:
            parts.append(head)
        rest = rest[cut:].lstrip()
    if rest:
        parts.append(rest)
    return parts


def _fitting_prefix_len(text: str, limit: int, measure: Measure) -> int:
    """The most code points from the start of ``text`` whose measure is within ``limit``.

    Every unit counts at least one per code point, so the answer is at most ``limit``; a
    binary search over that window keeps the cost at a few measures of ``limit`` characters.
    """
    low, high = 0, min(len(text), limit)
    while low < high:
        middle = (low + high + 1) // 2
        if measure(text[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    if low == 0:
        raise ValueError(f"limit {limit} is smaller than the character {text[0]!r}")
    return low


def _cut_index(text: str, fits: int) -> int:
    """Where to cut ``text`` given that its first ``fits`` code points fit (always >= 1)."""
    back_half = fits // 2
    for boundary in _BOUNDARIES:
        # A boundary starting right after the fitting window is as good as one inside it.
        found = text.rfind(boundary, back_half, fits + len(boundary))
        if found > 0:
            return found
    for index in range(min(fits, len(text) - 1), back_half, -1):
        if text[index].isspace():
            return index
    return _step_back_from_glue(text, fits)


def _step_back_from_glue(text: str, cut: int) -> int:
    """Move a hard cut left so it does not split characters that render as one.

    Gives up after a few steps (a pathological run of combining marks) and cuts where told:
    progress matters more than one garbled glyph.
    """
    for candidate in range(cut, max(0, cut - _MAX_GLUE_STEPS), -1):
        if not _glued(text, candidate):
            return candidate
    return cut


def _glued(text: str, index: int) -> bool:
    """Whether ``text[index - 1]`` and ``text[index]`` belong to one visible character."""
    before, after = text[index - 1], text[index]
    return (
        _is_surrogate_pair(before, after)
        or before == _ZERO_WIDTH_JOINER
        or after == _ZERO_WIDTH_JOINER
        or unicodedata.category(after) in _COMBINING_CATEGORIES
        or any(low <= ord(after) <= high for low, high in _MODIFIER_RANGES)
        or _inside_flag(text, index)
    )


def _is_surrogate_pair(before: str, after: str) -> bool:
    # A str decoded leniently can hold a pair as two code points; Telegram counts it as one
    # character, and half of it is not valid UTF-16.
    return "\ud800" <= before <= "\udbff" and "\udc00" <= after <= "\udfff"


def _inside_flag(text: str, index: int) -> bool:
    """Flags are pairs of regional indicators: a cut after an odd count of them splits one."""
    count = 0
    while index - count - 1 >= 0 and _is_regional_indicator(text[index - count - 1]):
        count += 1
    return count % 2 == 1 and _is_regional_indicator(text[index])


def _is_regional_indicator(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF
