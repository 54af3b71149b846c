"""The site's own chat as a channel: visitors' messages in, operators' replies out.

Inbound does not come as a provider's webhook: the widget's API (``channels.widget.web``)
authenticates the visitor's session, appends the message to the widget log and hands it to
the same durable intake as every webhook (``WebhookIngest.store``). So ``verify`` refuses
anything posted to ``/hooks/widget/...``.

Outbound, ``send`` appends the reply to the widget log under its ``reply_id``: the log is
where every live connection, in whichever channel actor holds it, reads from (docs/
channels/widget.md). A repeat of the same reply is stored once, so sends are idempotent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import orjson

from channels.base import Capabilities, Channel, Credentials, RawRequest, WebhookParse
from channels.markup import parse_bbcode
from channels.markup_render import lower, to_text
from channels.widget.config import VISITOR_TYPING_EVERY_S, WidgetCredentials
from channels.widget.log import Appended, NewEntry, Visitor
from channels.widget.logs import WidgetLogs, process_logs
from engine.errors import AuthError, ConfigError
from engine.ids import inbound_event_id, new_id
from engine.models import (
    ChannelEvent,
    Content,
    Customer,
    DialogTarget,
    InboundMessage,
    OutboundText,
    ReplyRequest,
    Route,
    SentReceipt,
)


class WidgetChannel(Channel):
    name: ClassVar[str] = "widget"
    credentials_model: ClassVar[type[Credentials]] = WidgetCredentials
    capabilities: ClassVar[Capabilities] = Capabilities(max_text_chars=100_000)
    # A reply is stored under its reply_id: a repeat after a restart is the same entry.
    idempotent_sends: ClassVar[bool] = True
    # The widget shows the persona's name and avatar beside each reply (docs/channels/
    # widget.md, "Sender"), so no name goes before the text.
    shows_sender: ClassVar[bool] = True

    credentials: WidgetCredentials

    def __init__(self, route: Route, credentials: Credentials, *, data_dir: Path) -> None:
        super().__init__(route, credentials)
        self.logs: WidgetLogs = process_logs(data_dir)

    @classmethod
    def build(cls, route: Route, credentials: Credentials, data_dir: Path | None) -> Channel:
        if data_dir is None:
            raise ConfigError(f"connector {route.connector_id!r} (widget) needs the data folder")
        return cls(route, credentials, data_dir=data_dir)

    # --- inbound

    def verify(self, request: RawRequest) -> None:
        raise AuthError(
            "the widget takes visitors' messages at /widget/{widget_id}/messages with a "
            "visitor's session, not as a webhook"
        )

    def parse(self, request: RawRequest, received_at: float) -> WebhookParse:
        raise AuthError("the widget has no webhook")  # never reached: verify refuses first

    def inbound(
        self,
        visitor: Visitor,
        client_id: str,
        content: Content,
        seq: int,
        received_at: float,
        extras: dict[str, str],
    ) -> InboundMessage:
        """A visitor's message as every channel's is stored; ordered by its log ``seq``."""
        event_id = f"{visitor.visitor_id}:{client_id}"
        return InboundMessage(
            id=inbound_event_id(self.route.connector_id, event_id),
            route=self.route,
            dialog_key=visitor.visitor_id,
            customer=Customer(
                channel_user_id=visitor.visitor_id,
                name=visitor.name,
                phone=visitor.phone,
                email=visitor.email,
            ),
            content=content,
            channel_message_id=f"w{seq}",
            channel_event_id=event_id,
            order_key=seq,
            sent_at=received_at,
            received_at=received_at,
            extras=extras,
        )

    def visitor_typing(self, visitor: Visitor, received_at: float) -> ChannelEvent:
        """The visitor is typing: the contract's ``typing`` event, best effort
        (docs/channels/contract.md). Its id names the ``VISITOR_TYPING_EVERY_S`` window it
        falls in, so however many of the visitor's requests (on however many channel
        actors) fall in one window, the portal's inbox keeps one event of it."""
        window = int(received_at // VISITOR_TYPING_EVERY_S)
        event_id = f"{visitor.visitor_id}:typing:{window}"
        return ChannelEvent(
            id=inbound_event_id(self.route.connector_id, event_id),
            route=self.route,
            kind="typing",
            dialog_key=visitor.visitor_id,
            customer_id=visitor.visitor_id,
            channel_event_id=event_id,
            occurred_at=received_at,
            received_at=received_at,
        )

    # --- outbound

    async def send(
        self,
        session: aiohttp.ClientSession,
        target: DialogTarget,
        request: ReplyRequest,
        *,
        reply_id: str,
    ) -> SentReceipt:
        body = orjson.dumps(reply_body(request, reply_id))
        entry = NewEntry(self.route.connector_id, target.dialog_key, f"r:{reply_id}", body)
        # The visitor's home log, on whichever node (docs/channels/widget.md, "Across
        # machines"): the reply is settled only once it is committed there.
        appended: Appended = (await self.logs.of_visitor(target.dialog_key).append([entry]))[0]
        return SentReceipt(channel_message_ids=(f"w{appended.seq}",))

    async def show_typing(self, customer_id: str, operator_id: str) -> None:
        """Best effort, like typing in every messenger: the visitor's live connection shows
        it for a few seconds; a page opened later does not (``TYPING_SHOWN_S``)."""
        entry = typing_entry(self.route.connector_id, customer_id, operator_id)
        await self.logs.of_visitor(customer_id).append([entry])


def typing_entry(connector_id: str, visitor_id: str, operator_id: str) -> NewEntry:
    """A signal that the operator is typing; a key of its own each time (never a repeat)."""
    body = orjson.dumps({"from": "typing", "operator_id": operator_id})
    return NewEntry(connector_id, visitor_id, new_id("typ"), body, kind="typing")


def shown_content(request: ReplyRequest) -> dict[str, Any]:
    """The content as the widget shows it: the page sets every text as text (never as
    HTML), so the portal's BB-code becomes the plain text the shared renderer makes of it,
    links spelled out (docs/channels/markup.md)."""
    content = request.content
    if isinstance(content, OutboundText) and content.markup == "bbcode":
        plain = to_text(lower(parse_bbcode(content.text), "plain"), "plain")
        content = content.model_copy(update={"text": plain, "markup": "plain"})
    return content.model_dump(mode="json")


def reply_body(request: ReplyRequest, reply_id: str) -> dict[str, Any]:
    """A reply as the widget shows it: who sends it (the persona's name and avatar, or
    null), the content, and buttons to press (docs/line-messages.md, "Buttons": a press
    comes back as the button's payload)."""
    keyboard = request.keyboard
    sender = request.sender
    return {
        "from": "line",
        "id": reply_id,
        "sender": sender.model_dump(mode="json") if sender is not None else None,
        "content": shown_content(request),
        "buttons": (
            [[button.model_dump(mode="json") for button in row] for row in keyboard.rows]
            if keyboard is not None
            else None
        ),
    }
