"""The portal's BB-code read into spans and rendered per channel (channels.markup,
channels.markup_render, channels.render): tables of what each tag becomes, and properties
that rendering never produces invalid Telegram HTML, never loses visible text and never
breaks a tag across parts."""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.markup import STYLES, Span, merge, parse_bbcode, visible
from channels.markup_render import Markup, lower, split_spans, to_text
from channels.render import Capabilities, MediaPart, TextPart, render
from channels.text_split import code_points, utf16_units
from engine.errors import PermanentSendError
from engine.models import OutboundImage, OutboundText, ReplyRequest


def spans(*items: tuple[str, str, str | None]) -> tuple[Span, ...]:
    """(text, styles as letters, url) triples."""
    return tuple(Span(text, frozenset(styles), url) for text, styles, url in items)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", spans(("plain", "", None))),
        (
            "[b]bold[/b] and [i]it[/i]",
            spans(("bold", "b", None), (" and ", "", None), ("it", "i", None)),
        ),
        ("[B]caps[/B]", spans(("caps", "b", None))),
        ("[s][u]both[/u][/s]", spans(("both", "su", None))),
        ("[b]a[i]b[/i][/b]", spans(("a", "b", None), ("b", "bi", None))),
        ("one[br]two", spans(("one\ntwo", "", None))),
        (
            "[url=https://ex.com/a?b=1&c=2]site[/url]",
            spans(("site", "", "https://ex.com/a?b=1&c=2")),
        ),
        ("[url]https://ex.com[/url]", spans(("https://ex.com", "", "https://ex.com"))),
        (
            "see https://ex.com/x.",
            spans(
                ("see ", "", None), ("https://ex.com/x", "", "https://ex.com/x"), (".", "", None)
            ),
        ),
        (
            "[b]go https://ex.com[/b]",
            spans(("go ", "b", None), ("https://ex.com", "b", "https://ex.com")),
        ),
        ("[url=mailto:a@ex.com]mail[/url]", spans(("mail", "", "mailto:a@ex.com"))),
        # What is not markup stays as typed:
        ("[b]never closed", spans(("[b]never closed", "", None))),
        ("a stray [/i]", spans(("a stray [/i]", "", None))),
        ("[color=red]x[/color]", spans(("[color=red]x[/color]", "", None))),
        ("[b=1]x[/b]", spans(("[b=1]x[/b]", "", None))),
        ("[b][i]x[/b][/i]", spans(("[b]", "", None), ("x[/b]", "i", None))),
        ("[url=javascript:alert(1)]click[/url]", spans(("click", "", None))),
        ("[url=https://a][url=https://b]in[/url][/url]", spans(("in", "", "https://a"))),
        (
            "Привет, [b]мир[/b] 👋🏽",
            spans(("Привет, ", "", None), ("мир", "b", None), (" 👋🏽", "", None)),
        ),
    ],
)
def test_bbcode_reads_into_spans(text: str, expected: tuple[Span, ...]) -> None:
    assert parse_bbcode(text) == expected


TEXT = (
    "[b]Hi[/b] <Ann> & [i]you[/i], [s]old[/s] [u]new[/u]: "
    '[url=https://ex.com/?a=1&b="2"]our site[/url] https://ex.com/t'
)


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        (
            "telegram_html",
            "<b>Hi</b> &lt;Ann&gt; &amp; <i>you</i>, <s>old</s> <u>new</u>: "
            '<a href="https://ex.com/?a=1&amp;b=&quot;2&quot;">our site</a> '
            '<a href="https://ex.com/t">https://ex.com/t</a>',
        ),
        (
            "whatsapp",
            '*Hi* <Ann> & _you_, ~old~ new: our site (https://ex.com/?a=1&b="2") https://ex.com/t',
        ),
        (
            "plain",
            'Hi <Ann> & you, old new: our site (https://ex.com/?a=1&b="2") https://ex.com/t',
        ),
    ],
)
def test_each_flavour_carries_what_it_can(markup: Markup, expected: str) -> None:
    assert to_text(lower(parse_bbcode(TEXT), markup), markup) == expected


def test_whatsapp_markers_hug_the_words_and_nest() -> None:
    styled = lower(parse_bbcode("say [b] hello [i]there[/i] [/b]!"), "whatsapp")
    assert to_text(styled, "whatsapp") == "say  *hello* *_there_* !"


def test_plain_markup_leaves_brackets_alone() -> None:
    request = ReplyRequest(content=OutboundText(text="[b]as typed[/b]", markup="plain"))
    caps = Capabilities(max_text_chars=100, markup="telegram_html")
    assert render(request, caps) == [TextPart("[b]as typed[/b]")]


def test_a_split_closes_and_reopens_the_tags_it_crosses() -> None:
    text = "[b]" + "word " * 20 + "[/b][url=https://ex.com]" + "link " * 10 + "[/url]"
    caps = Capabilities(max_text_chars=40, markup="telegram_html")
    parts = [part.text for part in render(ReplyRequest(content=OutboundText(text=text)), caps)]
    assert all(valid_telegram_html(part) for part in parts)
    assert parts[0] == "<b>" + " ".join(["word"] * 8) + "</b>"
    assert parts[-1].startswith('<a href="https://ex.com">') and parts[-1].endswith("</a>")
    assert all(utf16_units(telegram_visible(part)) <= 40 for part in parts)


def test_whatsapp_parts_count_their_markers_and_spelled_out_links() -> None:
    text = "[b]" + "bold " * 30 + "[/b][url=https://example.com/a/long/path]x[/url]"
    caps = Capabilities(max_text_chars=40, markup="whatsapp")
    parts = [part.text for part in render(ReplyRequest(content=OutboundText(text=text)), caps)]
    assert all(len(part) <= 40 for part in parts)
    assert all(re.fullmatch(r"\*(bold ?)+\*", part) for part in parts[:4])
    assert parts[4].startswith("*bold bold* x (https://")  # the link spelled out, counted
    assert squeeze("".join(parts)).endswith("x(https://example.com/a/long/path)")


def test_a_caption_is_escaped_for_telegram_and_counted_as_shown() -> None:
    image = OutboundImage(url="https://cdn.example.com/a.png", caption="a < b & c")
    caps = Capabilities(max_text_chars=100, max_caption_chars=9, markup="telegram_html")
    assert render(ReplyRequest(content=image), caps) == [
        MediaPart("image", "https://cdn.example.com/a.png", "a &lt; b &amp; c")
    ]


def test_a_limit_too_small_for_the_markers_is_a_permanent_failure() -> None:
    caps = Capabilities(max_text_chars=2, markup="whatsapp")
    with pytest.raises(PermanentSendError, match="cannot split the text"):
        render(ReplyRequest(content=OutboundText(text="[b]abc def[/b]")), caps)


# --- properties


_ALLOWED_TAG = re.compile(r'<(/?)(b|i|u|s|a)(?: href="([^"<>]*)")?>')
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot);")


def valid_telegram_html(text: str) -> bool:
    """Telegram's HTML rules: only its tags, properly nested, ``<a>`` with an ``href``,
    and ``<``, ``>``, ``&`` outside tags only as entities."""
    stack: list[str] = []
    position = 0
    for tag in _ALLOWED_TAG.finditer(text):
        if not _valid_data(text[position : tag.start()]):
            return False
        closing, name, href = tag.group(1) == "/", tag.group(2), tag.group(3)
        if closing:
            if href is not None or not stack or stack.pop() != name:
                return False
        else:
            if (name == "a") != (href is not None) or (href is not None and not _valid_data(href)):
                return False
            stack.append(name)
        position = tag.end()
    return _valid_data(text[position:]) and not stack


def _valid_data(data: str) -> bool:
    return "<" not in data and ">" not in data and "&" not in _ENTITY.sub("", data)


def telegram_visible(text: str) -> str:
    return html.unescape(_ALLOWED_TAG.sub("", text))


def squeeze(text: str) -> str:
    return "".join(text.split())


def is_subsequence(short: str, long: str) -> bool:
    letters = iter(long)
    return all(char in letters for char in short)


TAG_NAMES = ["b", "i", "s", "u", "B", "url", "br", "color"]
markup_texts = st.lists(
    st.one_of(
        st.text(max_size=12),
        st.sampled_from(TAG_NAMES).map(lambda name: f"[{name}]"),
        st.sampled_from(TAG_NAMES).map(lambda name: f"[/{name}]"),
        st.sampled_from(["[url=https://ex.com/?a=1&b=2]", "[url=javascript:x]", "[url=]"]),
        st.sampled_from(["https://ex.com/p?q=1", " http://a.b/<x>&", "\n\n", " ", "👋🏽", "🇩🇪"]),
    ),
    max_size=30,
).map("".join)


@given(markup_texts)
@settings(max_examples=400, deadline=None)
def test_telegram_html_is_always_valid_and_shows_the_visible_text(text: str) -> None:
    document = parse_bbcode(text)
    rendered = to_text(lower(document, "telegram_html"), "telegram_html")
    assert valid_telegram_html(rendered)
    assert telegram_visible(rendered) == visible(document)


@given(markup_texts)
@settings(max_examples=400, deadline=None)
def test_reading_markup_only_ever_removes_tags(text: str) -> None:
    """Every character outside a tag survives; only tag characters may go."""
    shown = visible(parse_bbcode(text))
    without_tags = re.sub(r"\[/?(?:b|i|s|u|url)(?:=[^\[\]]*)?\]", "", text, flags=re.IGNORECASE)
    without_tags = re.sub(r"\[br\]", "\n", without_tags, flags=re.IGNORECASE)
    with_breaks = re.sub(r"\[br\]", "\n", text, flags=re.IGNORECASE)
    assert is_subsequence(without_tags, shown)
    assert is_subsequence(shown, with_breaks)


@given(markup_texts, st.integers(min_value=12, max_value=80))
@settings(max_examples=300, deadline=None)
def test_telegram_parts_are_valid_within_the_limit_and_lose_nothing(text: str, limit: int) -> None:
    document = parse_bbcode(text)
    caps = Capabilities(max_text_chars=limit, markup="telegram_html")
    if not visible(document).strip():
        return
    parts = [part.text for part in render(ReplyRequest(content=OutboundText(text=text)), caps)]
    assert all(valid_telegram_html(part) for part in parts)
    assert all(utf16_units(telegram_visible(part)) <= limit for part in parts)
    assert squeeze("".join(telegram_visible(part) for part in parts)) == squeeze(visible(document))


style_sets = st.frozensets(st.sampled_from(STYLES))
documents = st.lists(
    st.builds(
        Span,
        st.text(alphabet=st.characters(blacklist_characters="[]"), min_size=1, max_size=15),
        style_sets,
    ),
    max_size=8,
).map(lambda items: tuple(merge(items)))


def to_bbcode(document: tuple[Span, ...]) -> str:
    out = []
    for span in document:
        opened = [style for style in STYLES if style in span.styles]
        out.append("".join(f"[{s}]" for s in opened) + span.text)
        out.append("".join(f"[/{s}]" for s in reversed(opened)))
    return "".join(out)


@given(documents)
@settings(max_examples=300, deadline=None)
def test_styled_text_written_as_bbcode_reads_back_character_by_character(
    document: tuple[Span, ...],
) -> None:
    read = parse_bbcode(to_bbcode(document))
    assert visible(read) == visible(document)
    assert styles_per_char(read) == styles_per_char(document)


def styles_per_char(document: tuple[Span, ...]) -> list[frozenset[str]]:
    return [frozenset(span.styles) for span in document for _ in span.text]


@given(documents, st.integers(min_value=8, max_value=60), st.sampled_from(["whatsapp", "plain"]))
@settings(max_examples=300, deadline=None)
def test_other_flavours_split_within_the_limit_and_lose_nothing(
    document: tuple[Span, ...], limit: int, markup: Markup
) -> None:
    lowered = lower(document, markup)
    if not visible(lowered).strip():
        return
    parts = split_spans(lowered, limit, code_points, markup)
    assert all(code_points(part) <= limit for part in parts)
    shown = "".join(parts)
    if markup == "whatsapp":
        shown = re.sub(r"[*_~]", "", shown)
        assert squeeze(shown) == squeeze(re.sub(r"[*_~]", "", visible(lowered)))
    else:
        assert squeeze(shown) == squeeze(visible(lowered))
