"""WhatsApp template messages: how a reply goes after the 24-hour customer service window.

Outside the window the Cloud API takes only an approved template (docs/channels/whatsapp.md,
"Outside the window"). A connector may configure one (``outside_window_template``): its
name, its language and how the operator's text fills the template body's parameters. The
engine then accepts a reply after the window closed instead of refusing it, and the channel
sends this template, one message, as Meta's ``type: template`` payload:

    {"type": "template", "template": {"name": ..., "language": {"code": ...},
     "components": [{"type": "body", "parameters": [{"type": "text", "text": ...}]}]}}

A parameter is one line of text: Meta refuses new lines, tabs and more than four spaces in
a row in it (error 132018), so the operator's text is flattened to one line first. A picture
or a file becomes its caption and link; buttons are not carried (a template has its own).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.errors import PermanentSendError
from engine.models import OutboundText, ReplyRequest

TEXT_PLACEHOLDER = "{text}"
MAX_PARAMETER_CHARS = 1024
"""A template body is at most 1024 characters, so no parameter can be longer."""
_SPACE_RUNS = re.compile(r"\s+")


class WhatsAppTemplate(BaseModel):
    """The approved template a connector sends a reply as after the window closed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(
        pattern=r"^[a-z0-9_]{1,512}$", description="The template's name, as approved by Meta."
    )
    language: str = Field(
        pattern=r"^[a-z]{2,3}(_[A-Za-z]{2,4})?$",
        description="The language code of the template's translation to send (en_US, ru).",
    )
    body_parameters: tuple[str, ...] = Field(
        default=(TEXT_PLACEHOLDER,),
        max_length=20,
        description="The template body's parameters in order ({{1}}, {{2}}, ...): each a "
        "text in which {text} is the operator's reply, made one line. Empty: a template "
        "without parameters (the operator's text is then not sent, only the template).",
    )


def reply_text(request: ReplyRequest) -> str:
    """The operator's reply as one line: a text, or a picture's or file's caption and link."""
    content = request.content
    if isinstance(content, OutboundText):
        words = content.text
    else:
        words = f"{content.caption or ''} {content.url}"
    return _SPACE_RUNS.sub(" ", words).strip()


def template_message(template: WhatsAppTemplate, request: ReplyRequest) -> dict[str, Any]:
    """The type-specific part of the ``/messages`` body for ``request`` as ``template``."""
    text = reply_text(request)
    parameters = [
        {"type": "text", "text": fill.replace(TEXT_PLACEHOLDER, text)}
        for fill in template.body_parameters
    ]
    for parameter in parameters:
        if not parameter["text"].strip():
            raise PermanentSendError(
                f"whatsapp template {template.name!r}: a body parameter would be empty"
            )
        if len(parameter["text"]) > MAX_PARAMETER_CHARS:
            raise PermanentSendError(
                f"whatsapp template {template.name!r}: a body parameter of "
                f"{len(parameter['text'])} characters is over the {MAX_PARAMETER_CHARS} a "
                "template body allows; shorten the reply"
            )
    body: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
    if parameters:
        body["components"] = [{"type": "body", "parameters": parameters}]
    return {"type": "template", "template": body}
