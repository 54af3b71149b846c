"""What the customer reads of an operator's reply.

Where the channel cannot show who sends a message (the channel plug-in's ``shows_sender`` is
false: every channel so far), the line's persona puts a name before the text: the replying
operator's display name (``profile``), one name for the whole line (``line_name``), or
none (``hidden``). A quick answer's text has its variables filled in. See docs/routing.md,
"Persona" and "Quick answers".
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from engine.models import OutboundContent, OutboundText
from engine.routing.rules import PersonaRules
from engine.routing.state import OperatorState

_VARIABLE = re.compile(r"\{([a-z_]+)\}")


def fill(text: str, values: Mapping[str, object]) -> str:
    """``{name}`` replaced by its value; unknown names stay as written (no ``str.format``:
    a text from YAML must not reach attributes). The routing rules' texts and quick answers
    (docs/routing.md, "Placeholders in texts"); the line's own messages have theirs in
    ``engine.line_texts.templates``."""
    return _VARIABLE.sub(lambda m: str(values.get(m.group(1), m.group(0))), text)


def persona_name(persona: PersonaRules, operator: OperatorState | None) -> str | None:
    """The name the customer sees for a reply by ``operator`` (None: no name)."""
    if persona.mode == "line_name":
        return persona.name
    if persona.mode == "hidden" or operator is None:
        return None
    return operator.display_name


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
