"""Which channels show buttons, and how: the one place that maps a channel to its renderer.

A line's question with buttons (a rating, a consent, a bot's menu) goes out through
``render_buttons``: for a channel with buttons, the text unchanged plus the parameters to
add to the send call that carries the text's **last** part (so the buttons sit under the
whole text); for any other channel, or a keyboard the channel cannot show, the text with
numbered options and no parameters. ``docs/line-messages.md`` ("Buttons") has the wire
format of each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from channels import telegram_keyboard, viber_keyboard, vk_keyboard
from channels.meta.quick_replies import quick_replies_param
from engine.buttons.keyboard import Keyboard
from engine.buttons.text_fallback import numbered_text
from engine.models import OutboundText, ReplyRequest


def _telegram(keyboard: Keyboard) -> dict[str, Any] | None:
    return {"reply_markup": telegram_keyboard.reply_markup(keyboard)}


def _vk(keyboard: Keyboard) -> dict[str, Any] | None:
    param = vk_keyboard.keyboard_param(keyboard)
    return {"keyboard": param} if param is not None else None


def _viber(keyboard: Keyboard) -> dict[str, Any] | None:
    param = viber_keyboard.keyboard_param(keyboard)
    return {"keyboard": param} if param is not None else None


RENDERERS: dict[str, Callable[[Keyboard], dict[str, Any] | None]] = {
    "telegram": _telegram,
    "vk": _vk,
    "viber": _viber,
    "facebook": quick_replies_param,
    "instagram": quick_replies_param,
}


@dataclass(frozen=True)
class RenderedButtons:
    """What to send: ``text``, and ``params`` merged into the call carrying its last part."""

    text: str
    params: dict[str, Any] = field(default_factory=dict)


def render_buttons(channel: str, text: str, keyboard: Keyboard | None) -> RenderedButtons:
    """``text`` with ``keyboard`` as ``channel`` can carry it; never raises for a channel
    or a keyboard it cannot show, it falls back to numbered options instead."""
    if keyboard is None:
        return RenderedButtons(text)
    renderer = RENDERERS.get(channel)
    params = renderer(keyboard) if renderer is not None else None
    if params is None:
        return RenderedButtons(numbered_text(text, keyboard))
    return RenderedButtons(text, params)


def reply_buttons(channel: str, request: ReplyRequest) -> tuple[ReplyRequest, dict[str, Any]]:
    """``request`` as ``channel`` sends it, and the parameters for the call that carries its
    last part: a text's keyboard rendered (``render_buttons``), the request without it.

    Only a text carries buttons (the line's own texts and its bot's answers are texts); a
    request without a keyboard comes back as it is, with no parameters.
    """
    keyboard = request.keyboard
    content = request.content
    if keyboard is None or not isinstance(content, OutboundText):
        return request, {}
    rendered = render_buttons(channel, content.text, keyboard)
    text = content.model_copy(update={"text": rendered.text})
    return request.model_copy(update={"content": text, "keyboard": None}), rendered.params
