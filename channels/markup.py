"""The portal's markup of an operator's text, read into styled spans (docs/channels/markup.md).

A reply's text may carry a small BB-code, as Bitrix24's operators write it: ``[b]``, ``[i]``,
``[s]``, ``[u]`` (bold, italic, strike-through, underline), ``[url=https://...]text[/url]``
and ``[url]https://...[/url]`` (links), ``[br]`` (a line break); tags are case-insensitive
and nest. Plain ``http(s)://`` URLs in the text are links too. What is not markup stays
text, so nothing the operator typed is lost:

* a tag without its partner (``[b]`` never closed, a stray ``[/i]``) is kept as typed;
* an unknown tag (``[color=red]``) is kept as typed;
* a link to anything but ``http``, ``https`` or ``mailto`` keeps its text and loses the link
  (no ``javascript:`` reaches a customer's app); a link inside a link is the outer one's
  text.

The result is a tuple of ``Span``: the visible text, in order, each piece with its styles
and link. The renderers (``channels.markup_render``) turn spans into what a channel carries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Style = Literal["b", "i", "s", "u"]
STYLES: tuple[Style, ...] = ("b", "i", "u", "s")
"""The styles in the order they are nested when rendered (outermost first)."""

_TAG = re.compile(r"\[(/?)(b|i|s|u|url|br)(?:=([^\[\]]*))?\]", re.IGNORECASE)
_PLAIN_URL = re.compile(r"https?://[^\s<>\[\]\"']+", re.IGNORECASE)
_TRAILING_PUNCTUATION = ".,;:!?)'\""
_LINK_SCHEMES = ("http://", "https://", "mailto:")


@dataclass(frozen=True)
class Span:
    """A piece of visible text with its styles and the link it is part of."""

    text: str
    styles: frozenset[Style] = frozenset()
    url: str | None = None


def plain_spans(text: str) -> tuple[Span, ...]:
    """A text without markup: one span, plain URLs found as links."""
    return _with_plain_urls((Span(text),))


def parse_bbcode(text: str) -> tuple[Span, ...]:
    """The spans of a text written in the portal's BB-code (rules above)."""
    tokens = list(_TAG.finditer(text))
    paired = _paired(tokens)
    spans: list[Span] = []
    styles: list[Style] = []
    links: list[str | None] = []
    position = 0
    for index, token in enumerate(tokens):
        spans.append(_span(text[position : token.start()], styles, links))
        position = token.end()
        closing, name, value = token.group(1) == "/", token.group(2).lower(), token.group(3)
        if name == "br" and not closing and value is None:
            spans.append(_span("\n", styles, links))
        elif index not in paired:
            spans.append(_span(token.group(0), styles, links))
        elif name == "url":
            _link_tag(closing, value, text, token, tokens[paired[index]], links)
        elif closing:
            styles.remove(name)  # type: ignore[arg-type]
        else:
            styles.append(name)  # type: ignore[arg-type]
    spans.append(_span(text[position:], styles, links))
    return _with_plain_urls(tuple(merge(spans)))


def visible(spans: tuple[Span, ...] | list[Span]) -> str:
    return "".join(span.text for span in spans)


def slice_spans(spans: tuple[Span, ...], start: int, end: int) -> tuple[Span, ...]:
    """The spans covering ``visible(spans)[start:end]``, cut at the edges."""
    out: list[Span] = []
    offset = 0
    for span in spans:
        low, high = max(start, offset), min(end, offset + len(span.text))
        if low < high:
            out.append(Span(span.text[low - offset : high - offset], span.styles, span.url))
        offset += len(span.text)
    return tuple(out)


def merge(spans: list[Span]) -> list[Span]:
    """Neighbours with the same styles and link joined, empty spans dropped."""
    out: list[Span] = []
    for span in spans:
        if not span.text:
            continue
        if out and (out[-1].styles, out[-1].url) == (span.styles, span.url):
            out[-1] = Span(out[-1].text + span.text, span.styles, span.url)
        else:
            out.append(span)
    return out


def _span(text: str, styles: list[Style], links: list[str | None]) -> Span:
    return Span(text, frozenset(styles), links[0] if links else None)


def _paired(tokens: list[re.Match[str]]) -> dict[int, int]:
    """Tags that have their partner, opening to closing index and back: an opening tag
    and the first closing tag of the same name after it at the same depth of that name."""
    paired: set[int] = set()
    open_by_name: dict[str, list[int]] = {}
    for index, token in enumerate(tokens):
        name = token.group(2).lower()
        if name == "br":
            continue
        if token.group(1) != "/":
            if token.group(3) is None or name == "url":
                open_by_name.setdefault(name, []).append(index)
        elif token.group(3) is None and open_by_name.get(name):
            paired.update((open_by_name[name].pop(), index))
    return _well_nested(tokens, paired)


def _well_nested(tokens: list[re.Match[str]], paired: set[int]) -> dict[int, int]:
    """Pairs that cross another pair (``[b][i][/b][/i]``) are text: only pairs that nest
    properly are kept."""
    kept: dict[int, int] = {}
    stack: list[int] = []
    for index in sorted(paired):
        token = tokens[index]
        if token.group(1) != "/":
            stack.append(index)
            continue
        name = token.group(2).lower()
        if stack and tokens[stack[-1]].group(2).lower() == name:
            opening = stack.pop()
            kept[opening], kept[index] = index, opening
        else:
            # A crossing pair: drop its opening tag from the stack, keep both as text.
            for position in range(len(stack) - 1, -1, -1):
                if tokens[stack[position]].group(2).lower() == name:
                    del stack[position]
                    break
    return kept


def _link_tag(
    closing: bool,
    value: str | None,
    text: str,
    token: re.Match[str],
    closing_tag: re.Match[str],
    links: list[str | None],
) -> None:
    """Opening ``[url]`` pushes its target (``None`` when refused), closing pops it."""
    if closing:
        links.pop()
        return
    if value is None:  # [url]https://...[/url]: the target is the text inside
        value = _TAG.sub("", text[token.end() : closing_tag.start()])
    target = value.strip()
    safe = target.lower().startswith(_LINK_SCHEMES) and not any(c.isspace() for c in target)
    # A link inside a link is the outer one's text: push the outer target again.
    links.append(links[0] if links else (target if safe else None))


def _with_plain_urls(spans: tuple[Span, ...]) -> tuple[Span, ...]:
    """Plain URLs in spans outside links become links to themselves."""
    out: list[Span] = []
    for span in spans:
        if span.url is not None:
            out.append(span)
            continue
        position = 0
        for match in _PLAIN_URL.finditer(span.text):
            url = match.group(0).rstrip(_TRAILING_PUNCTUATION)
            out.append(Span(span.text[position : match.start()], span.styles))
            out.append(Span(url, span.styles, url))
            position = match.start() + len(url)
        out.append(Span(span.text[position:], span.styles))
    return tuple(merge(out))
