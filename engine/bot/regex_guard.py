"""Regular expressions a line's bot may use, with a proven bound on their matching cost.

Python's ``re`` backtracks and has no time limit: a rule like ``(a|a)*b`` takes seconds on
a 25-character message and ``a*a*b`` grows with the cube of its length, and the message is
the customer's to choose. A time budget would make the bot's answer depend on the machine's
load. So a pattern is checked when the line's file loads, against a cost that depends only
on the pattern (``docs/bot.md``, "Regular expressions, safely"):

* The pattern is at most ``MAX_PATTERN_CHARS`` long and is matched case-insensitively
  against the first ``MAX_MATCHED_CHARS`` characters of a message.
* No back-references, look-arounds, conditionals or atomic groups.
* A repeat (``*``, ``+``, ``?``, ``{m,n}``) repeats one character (a letter, a class like
  ``[a-z]`` or ``\\d``, ``.``), or a group at most once (``(?:...)?``): no repeated groups,
  the source of exponential backtracking.
* The cost: each greedy or lazy repeat may be tried with each count it allows (at most the
  matched length), a group with each of its alternatives; their product is the number of
  ways one attempt can go, times the starting positions (1 when the pattern starts with
  ``^`` or ``\\A``, else the matched length). It must stay within ``MAX_COST``, and all of a
  line's patterns together within ``MAX_LINE_COST``. A possessive repeat (``*+``, ``++``)
  never gives back what it took, so it counts once.

The bound is pessimistic (a literal between two repeats often cuts the real work to a line),
and its message says what to change: bound a repeat (``\\d{1,12}``), make it possessive, or
anchor the pattern with ``^``.
"""

from __future__ import annotations

import re

# ``re._parser`` is the parser ``re.compile`` itself uses (``sre_parse`` before 3.11, which
# now warns on import). It is private, so only its stable output shape is read here: a list
# of (opcode, argument) pairs whose opcodes are ``re._constants`` names.
import re._constants as sre_constants
import re._parser as sre_parser
from typing import Any

MAX_PATTERN_CHARS = 200
MAX_MATCHED_CHARS = 256
MAX_COST = 2_000_000
MAX_LINE_COST = 5_000_000
"""About 20 ms for one pattern and 50 ms for a line at worst on the engine's reference
machine (2 cores), measured with the worst patterns the bound admits (``tests/engine/
test_bot_regex.py``); typical patterns take microseconds."""

_SINGLE = {"LITERAL", "NOT_LITERAL", "ANY", "IN", "CATEGORY"}
_ZERO_WIDTH = {"AT"}
_REPEATS = {"MAX_REPEAT", "MIN_REPEAT"}
_FORBIDDEN = {
    "GROUPREF": "back-references",
    "GROUPREF_EXISTS": "conditional groups",
    "GROUPREF_IGNORE": "back-references",
    "GROUPREF_LOC_IGNORE": "back-references",
    "GROUPREF_UNI_IGNORE": "back-references",
    "ASSERT": "look-arounds",
    "ASSERT_NOT": "look-arounds",
    "ATOMIC_GROUP": "atomic groups",
}
_START_ANCHORS = {"AT_BEGINNING", "AT_BEGINNING_STRING"}
_UNBOUNDED = int(sre_constants.MAXREPEAT)
HINT = "bound a repeat ({0,20}), make it possessive (*+, ++) or anchor the pattern with ^"


class RegexCost(ValueError):
    """A pattern refused, with the reason a line's manager can act on."""


def compile_guarded(pattern: str) -> tuple[re.Pattern[str], int]:
    """The compiled pattern (case-insensitive) and its cost; ``RegexCost`` if refused."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise RegexCost(f"is {len(pattern)} characters long; at most {MAX_PATTERN_CHARS}")
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
        tree = sre_parser.parse(pattern, re.IGNORECASE)
    except re.error as exc:
        raise RegexCost(f"is not a valid regular expression: {exc}") from None
    items = list(tree)
    # (?m) makes ^ match after every line break: then it anchors nothing.
    anchored = _anchored(items) and not tree.state.flags & re.MULTILINE
    cost = _sequence_cost(items) * (1 if anchored else MAX_MATCHED_CHARS)
    if cost > MAX_COST:
        raise RegexCost(
            f"may take {cost:,} steps on a {MAX_MATCHED_CHARS}-character message, "
            f"more than {MAX_COST:,}: {HINT}"
        )
    return compiled, cost


def _name(opcode: Any) -> str:
    return str(opcode)


def _anchored(items: list[tuple[Any, Any]]) -> bool:
    return bool(items) and _name(items[0][0]) == "AT" and _name(items[0][1]) in _START_ANCHORS


def _sequence_cost(items: list[tuple[Any, Any]]) -> int:
    cost = 1
    for opcode, argument in items:
        cost *= _item_cost(_name(opcode), argument)
    return cost


def _item_cost(name: str, argument: Any) -> int:
    if name in _FORBIDDEN:
        raise RegexCost(f"uses {_FORBIDDEN[name]}, which the bot does not allow")
    if name in _SINGLE or name in _ZERO_WIDTH:
        return 1
    if name == "SUBPATTERN":
        return _sequence_cost(list(argument[3]))
    if name == "BRANCH":
        return sum(_sequence_cost(list(branch)) for branch in argument[1])
    if name == "POSSESSIVE_REPEAT":
        low, high, inner = argument
        _repeated_cost(low, high, list(inner))  # refuses a repeated group all the same
        return 1
    if name in _REPEATS:
        low, high, inner = argument
        return _repeated_cost(low, high, list(inner))
    raise RegexCost(f"uses {name.lower()}, which the bot does not allow")


def _repeated_cost(low: int, high: int, inner: list[tuple[Any, Any]]) -> int:
    """Choices of one repeat: each count it may be tried with, at most the matched length."""
    top = MAX_MATCHED_CHARS if int(high) == _UNBOUNDED else min(int(high), MAX_MATCHED_CHARS)
    if len(inner) == 1 and _name(inner[0][0]) in _SINGLE:
        return max(1, top - min(int(low), top) + 1)
    if top <= 1:  # (?:...)? or (?:...){1}: the group, or nothing
        inner_cost = _sequence_cost(inner)
        return inner_cost + (1 if int(low) == 0 else 0)
    raise RegexCost(
        "repeats a group, which can take exponential time: repeat one character or class "
        "([ab]+ rather than (a|b)+), or the group at most once ((?:...)?)"
    )
