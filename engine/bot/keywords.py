"""Keywords: the bot's plain way to recognise a message, without regular expressions.

A keyword is a word or a phrase; it matches a message that contains it as whole words, in
any case, with ``ё`` read as ``е`` and emoji variation selectors ignored. A ``*`` at the end
of a word matches any ending, which Russian needs: ``достав*`` matches "доставка",
"доставку", "доставкой". Punctuation and emoji are words of their own, so ``👍`` matches a
message "👍👍" and "спасибо 👍". Matching is linear in the message's length.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_TOKEN = re.compile(r"\w+\*?|[^\w\s]")
_SKIN_TONES = range(0x1F3FB, 0x1F400)


def fold(text: str) -> str:
    """NFKC, case-folded, ``ё`` as ``е``, without variation selectors or skin tones."""
    folded = unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")
    return "".join(
        char for char in folded if char not in "\ufe0e\ufe0f" and ord(char) not in _SKIN_TONES
    )


def words(text: str) -> tuple[str, ...]:
    """The words of a message as keywords see them (a ``*`` is punctuation here)."""
    return tuple(token.rstrip("*") or token for token in _TOKEN.findall(fold(text)))


@dataclass(frozen=True)
class Keyword:
    """One keyword: its words, and which of them match any ending."""

    text: str
    parts: tuple[tuple[str, bool], ...]

    @classmethod
    def parse(cls, text: str) -> Keyword:
        """``ValueError`` for a keyword with no word or a ``*`` that ends no word."""
        tokens = _TOKEN.findall(fold(text))
        if not tokens:
            raise ValueError(f"keyword {text!r} has no word in it")
        if "*" in tokens:
            raise ValueError(f"keyword {text!r}: a * only ends a word, as in достав*")
        return cls(text, tuple((token.rstrip("*"), token.endswith("*")) for token in tokens))

    def found_in(self, message_words: tuple[str, ...]) -> bool:
        span = len(self.parts)
        return any(
            all(
                _word_matches(message_words[start + offset], part)
                for offset, part in enumerate(self.parts)
            )
            for start in range(len(message_words) - span + 1)
        )


def _word_matches(word: str, part: tuple[str, bool]) -> bool:
    expected, any_ending = part
    return word.startswith(expected) if any_ending else word == expected


def any_found(keywords: tuple[Keyword, ...], message_words: tuple[str, ...]) -> bool:
    return any(keyword.found_in(message_words) for keyword in keywords)
