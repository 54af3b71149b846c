"""The shared renderer (channels.render): one operator reply to what a channel can carry."""

from __future__ import annotations

import pytest

from channels.render import Capabilities, MediaPart, TextPart, render
from channels.text_split import code_points, utf16_units
from engine.errors import PermanentSendError
from engine.models import OutboundFile, OutboundImage, OutboundText, ReplyRequest

URL = "https://cdn.example.com/invoice.pdf"


def request(content: OutboundText | OutboundImage | OutboundFile) -> ReplyRequest:
    return ReplyRequest(content=content)


def test_a_long_text_is_split_on_word_boundaries_within_the_limit() -> None:
    text = "Здравствуйте! " * 10 + "👋 " * 5
    parts = render(request(OutboundText(text=text)), Capabilities(max_text_chars=40))
    assert all(isinstance(p, TextPart) and utf16_units(p.text) <= 40 for p in parts)
    assert " ".join(p.text for p in parts if isinstance(p, TextPart)).split() == text.split()


def test_media_the_channel_cannot_send_goes_as_a_link_under_its_caption() -> None:
    caps = Capabilities(max_text_chars=100, images=False, files=False)
    file = OutboundFile(url=URL, name="invoice.pdf", caption="Счёт 📄")
    assert render(request(file), caps) == [TextPart(f"Счёт 📄\n{URL}")]
    assert render(request(OutboundImage(url=URL)), caps) == [TextPart(URL)]


def test_a_caption_too_long_for_the_media_follows_it_as_text() -> None:
    caps = Capabilities(max_text_chars=100, max_caption_chars=10)
    image = OutboundImage(url=URL, caption="a caption longer than ten")
    assert render(request(image), caps) == [
        MediaPart("image", URL, None),
        TextPart("a caption longer than ten"),
    ]
    short = OutboundFile(url=URL, name="f.pdf", caption="short")
    assert render(request(short), caps) == [MediaPart("file", URL, "short", "f.pdf")]


def test_the_channels_unit_measures_the_limit() -> None:
    emoji = "👋" * 6  # 6 code points, 12 UTF-16 units
    caps = Capabilities(max_text_chars=6)
    assert len(render(request(OutboundText(text=emoji)), caps, code_points)) == 1
    assert len(render(request(OutboundText(text=emoji)), caps, utf16_units)) == 2


def test_only_whitespace_renders_to_a_permanent_failure() -> None:
    with pytest.raises(PermanentSendError, match="nothing but whitespace"):
        render(request(OutboundText(text=" \n\t ")), Capabilities(max_text_chars=10))
