"""What the customer sees of an operator's reply.

The line's persona decides who the customer sees sending it: the replying operator's
display name and avatar (``profile``), the line's name and avatar (``line_name``), or
nobody (``hidden``). A channel that shows a sender (the plug-in's ``shows_sender``: the
widget) gets them beside the reply; on every other channel the name goes before the text.
A quick answer's text has its variables filled in. See docs/routing.md, "Persona" and
"Quick answers".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

from engine.models import OutboundContent, OutboundText, ReplySender
from engine.routing.rules import PersonaRules
from engine.routing.state import OperatorState


class ShownReply(NamedTuple):
    """A reply as the customer will see it."""

    content: OutboundContent
    """The content, with the persona's name before the text where no sender is shown."""
    sender: ReplySender | None
    """Who is shown beside it (only for a channel that shows a sender; None: nobody)."""
    outside_window_form: str | None = None
    """The dialog's window had closed: the form the channel carries it in instead."""


_VARIABLE = re.compile(r"\{([a-z_]+)\}")


def fill(text: str, values: Mapping[str, object]) -> str:
    """``{name}`` replaced by its value; unknown names stay as written (no ``str.format``:
    a text from YAML must not reach attributes). The routing rules' texts and quick answers
    (docs/routing.md, "Placeholders in texts"); the line's own messages have theirs in
    ``engine.line_texts.templates``."""
    return _VARIABLE.sub(lambda m: str(values.get(m.group(1), m.group(0))), text)


def persona_sender(persona: PersonaRules, operator: OperatorState | None) -> ReplySender | None:
    """Who the customer sees sending a reply by ``operator`` (None: nobody). An operator
    without a name or an avatar in their profile shows what they have."""
    if persona.mode == "line_name":
        return ReplySender(name=persona.name, avatar_url=persona.avatar_url)
    if persona.mode == "hidden" or operator is None:
        return None
    if operator.display_name is None and operator.avatar_url is None:
        return None
    return ReplySender(name=operator.display_name, avatar_url=operator.avatar_url)


def persona_name(persona: PersonaRules, operator: OperatorState | None) -> str | None:
    """The name the customer sees for a reply by ``operator`` (None: no name)."""
    sender = persona_sender(persona, operator)
    return sender.name if sender is not None else None


def signed(content: OutboundContent, name: str | None) -> OutboundContent:
    """``content`` with ``name`` before its text, or before the caption of an image or a
    file that has one (a file without a caption is left as it is)."""
    if name is None:
        return content
    if isinstance(content, OutboundText):
        # model_copy: the name must not make a text at the length limit fail validation;
        # the channel splits long texts anyway.
        return content.model_copy(update={"text": f"{name}: {content.text}"})
    if content.caption:
        return content.model_copy(update={"caption": f"{name}: {content.caption}"})
    return content


def quick_answer_text(
    text: str, customer_name: str | None, operator_name: str | None, line_name: str
) -> str:
    """A quick answer's text with ``{customer_name}``, ``{operator_name}`` and
    ``{line_name}`` filled in; a name that is not known becomes empty, never the
    placeholder (the customer reads it)."""
    return fill(
        text,
        {
            "customer_name": customer_name or "",
            "operator_name": operator_name or "",
            "line_name": line_name,
        },
    )
