"""Telegram Bot API: webhook updates in, ``sendMessage``/``sendPhoto``/``sendDocument`` out.

Wire format and quirks: channels.md section 1. The webhook is authenticated only by the
shared ``secret_token`` Telegram echoes in ``X-Telegram-Bot-Api-Secret-Token``; a connector
without one cannot be built, so an unset secret never means "accept everything".

Buttons (docs/line-messages.md, "Buttons"): a reply's keyboard goes as ``reply_markup`` on
the call carrying its last part; a press comes as a ``callback_query`` update, stored as the
customer's message (``channels.telegram_keyboard``) and answered with
``answerCallbackQuery`` in the webhook's own answer, once stored, so the client's spinner
stops without another call.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any, ClassVar

import aiohttp
import orjson
from pydantic import BaseModel, Field, model_validator

from channels import telegram_setup
from channels.base import (
    ApiBaseUrl,
    Capabilities,
    Channel,
    Credentials,
    MediaSource,
    PollResult,
    RawRequest,
    WebhookParse,
    WebhookReply,
    order_key_out_of_range,
)
from channels.http_calls import json_object, post, retry_after_s
from channels.keyboards import reply_buttons
from channels.partial_sends import ResumeMemory
from channels.render import Part, TextPart, render
from channels.telegram_keyboard import answer_call, callback_press, press_message
from channels.telegram_setup import TelegramConnect
from channels.telegram_types import (
    ENVELOPE_KEYS,
    TgChatMemberUpdated,
    TgContact,
    TgLocation,
    TgMessage,
    TgMessageReactionUpdated,
    TgUpdate,
    TgUser,
)
from channels.webhook_body import decode_json, validate
from engine.delivery.send_rates import Rate, SendRate
from engine.errors import (
    AuthError,
    ConfigError,
    PermanentSendError,
    RetryableSendError,
    ValidationFailedError,
)
from engine.ids import inbound_event_id
from engine.models import (
    AudioContent,
    ChannelEvent,
    ChannelEventKind,
    ContactContent,
    Content,
    Customer,
    DialogTarget,
    FileContent,
    ImageContent,
    InboundAction,
    InboundMessage,
    LocationContent,
    ReplyRequest,
    Route,
    SentReceipt,
    StickerContent,
    TextContent,
    VideoContent,
)

SECRET_HEADER = "x-telegram-bot-api-secret-token"
MAX_TEXT_UTF16 = 4096
MAX_CAPTION_UTF16 = 1024


class TelegramCredentials(Credentials):
    """One bot: its token for outbound calls and the webhook secret it registered."""

    bot_token: str = Field(
        min_length=1,
        pattern=r"^[^/?#\s]+$",
        repr=False,
        description="Bot token from @BotFather ('123456:ABC...'); it goes into the API URL path.",
    )
    secret_token: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        pattern=r"^[A-Za-z0-9_-]+$",
        repr=False,
        description=(
            "The secret_token given to setWebhook (1-256 of A-Z a-z 0-9 _ -); every webhook "
            "request must carry it in X-Telegram-Bot-Api-Secret-Token. Required unless the "
            "connector polls."
        ),
    )
    poll_interval_s: float | None = Field(
        default=None,
        ge=1,
        description=(
            "Poll getUpdates this often instead of taking webhooks (no public URL needed; "
            "docs/channels/telegram.md, 'Polling'); unset: webhooks."
        ),
    )

    @model_validator(mode="after")
    def _webhook_needs_a_secret(self) -> TelegramCredentials:
        if self.secret_token is None and self.poll_interval_s is None:
            raise ValueError(
                "secret_token: required for a webhook connector (or set poll_interval_s)"
            )
        return self

    api_base_url: ApiBaseUrl = Field(
        default="https://api.telegram.org",
        description="Bot API server; a local telegram-bot-api server or a test stand-in.",
    )
    request_timeout_s: float = Field(
        default=30, gt=0, description="Total time allowed for one Bot API call, in seconds."
    )


_MESSAGE_KINDS: dict[str, InboundAction] = {"message": "new", "edited_message": "edit"}
_CHANNEL_POST_KINDS = ("channel_post", "edited_channel_post")


class TelegramChannel(Channel):
    """A Telegram bot connector.

    ``send`` splits a long text into several messages. When part k of n fails with a
    retryable error after earlier parts went out, the channel remembers the parts sent (see
    ``ResumeMemory``, for the last ``RESUME_MEMORY`` such replies) and a retry of the same
    target and request resumes at part k instead of resending them.
    """

    name: ClassVar[str] = "telegram"
    credentials_model: ClassVar[type[Credentials]] = TelegramCredentials
    capabilities: ClassVar[Capabilities] = Capabilities(
        max_text_chars=MAX_TEXT_UTF16, max_caption_chars=MAX_CAPTION_UTF16, markup="telegram_html"
    )
    connect_model: ClassVar[type[BaseModel] | None] = TelegramConnect
    RESUME_MEMORY: ClassVar[int] = 1024

    # Telegram's FAQ: about 30 messages a second per bot; about one a second per chat, short
    # bursts tolerated, so a line's several texts at once (a greeting, a consent request, a
    # queue place) are never held back (docs/channels/telegram.md, "Outbound").
    send_rate: ClassVar[SendRate] = SendRate(
        per_connector=Rate(per_s=30, burst=30), per_chat=Rate(per_s=1, burst=20)
    )

    credentials: TelegramCredentials

    def __init__(self, route: Route, credentials: Credentials) -> None:
        super().__init__(route, credentials)
        self._resume = ResumeMemory(self.RESUME_MEMORY)

    # --- connecting (docs/channels/telegram.md, "Connecting")

    @classmethod
    async def prepare_connect(
        cls, session: aiohttp.ClientSession, given: BaseModel
    ) -> dict[str, object]:
        assert isinstance(given, TelegramConnect)
        return await telegram_setup.prepare(session, given)

    async def subscribe(
        self, session: aiohttp.ClientSession, webhook_url: str
    ) -> dict[str, object]:
        creds = self.credentials
        if creds.secret_token is None:  # prepare_connect always makes one
            raise ConfigError("a polling Telegram connector takes no webhook")
        await telegram_setup.set_webhook(
            session, creds.api_base_url, creds.bot_token, creds.secret_token, webhook_url
        )
        return {}

    async def unsubscribe(self, session: aiohttp.ClientSession, webhook_url: str) -> None:
        creds = self.credentials
        await telegram_setup.delete_webhook(session, creds.api_base_url, creds.bot_token)

    # --- polling (docs/channels/telegram.md, "Polling")

    @property
    def poll_interval_s(self) -> float | None:
        return self.credentials.poll_interval_s

    async def poll(
        self, session: aiohttp.ClientSession, cursor: str | None, received_at: float
    ) -> PollResult:
        """``getUpdates`` from the offset after the last stored update: asking with a higher
        offset is what confirms earlier updates to Telegram, so nothing is confirmed before
        it is stored. An update that does not parse is ignored with its reason rather than
        stopping the stream."""
        # Through the send path's call: a 429 keeps its retry_after, which the loop honours.
        offset = None if cursor is None else int(cursor)
        result = await self._call(session, "getUpdates", telegram_setup.get_updates_params(offset))
        updates = telegram_setup.updates_of(result)
        messages: list[InboundMessage] = []
        events: list[ChannelEvent] = []
        ignored: list[str] = []
        next_offset = None if cursor is None else int(cursor)
        for update in updates:
            update_id = update["update_id"]
            next_offset = max(next_offset or 0, update_id + 1)
            try:
                parsed = self.parse_update(update, update_id, received_at)
            except ValidationFailedError:
                ignored.append("invalid_update")
                continue
            messages.extend(parsed.messages)
            events.extend(parsed.events)
            ignored.extend(parsed.ignored)
        parsed_all = WebhookParse(
            messages=tuple(messages), events=tuple(events), ignored=tuple(ignored)
        )
        cursor_after = None if next_offset is None else str(next_offset)
        more = len(updates) == telegram_setup.UPDATES_PER_POLL
        return PollResult(parsed_all, cursor_after, more)

    # --- customers' media (docs/channels/media.md)

    async def media_source(self, session: aiohttp.ClientSession, file_id: str) -> MediaSource:
        """``getFile``, then the file's URL under ``/file/bot<token>/``: the token is in the
        URL, so only the engine may fetch it (docs/channels/telegram.md, "Media")."""
        result = await self._call(session, "getFile", {"file_id": file_id})
        path = result.get("file_path") if isinstance(result, dict) else None
        if not isinstance(path, str) or not path:
            raise PermanentSendError("telegram getFile: the file cannot be downloaded any more")
        size = result.get("file_size")
        creds = self.credentials
        return MediaSource(
            url=f"{creds.api_base_url}/file/bot{creds.bot_token}/{path}",
            name=path.rsplit("/", 1)[-1],
            size_bytes=size if isinstance(size, int) and not isinstance(size, bool) else None,
        )

    # --- inbound

    def verify(self, request: RawRequest) -> None:
        if self.credentials.secret_token is None:
            raise AuthError("this connector polls getUpdates and takes no webhooks")
        presented = request.headers.get(SECRET_HEADER)
        if presented is None:
            raise AuthError("missing X-Telegram-Bot-Api-Secret-Token header")
        expected = self.credentials.secret_token.encode()
        if not hmac.compare_digest(presented.encode("utf-8", "surrogatepass"), expected):
            raise AuthError("X-Telegram-Bot-Api-Secret-Token does not match the secret_token")

    def parse(self, request: RawRequest, received_at: float) -> WebhookParse:
        update, update_id = _decode_update(request.body)
        return self.parse_update(update, update_id, received_at)

    def parse_update(
        self, update: dict[str, Any], update_id: int, received_at: float
    ) -> WebhookParse:
        """One update, from a webhook or from ``getUpdates`` (``poll``)."""
        out_of_range = order_key_out_of_range("update_id", update_id)
        if out_of_range is not None:  # Telegram would resend it, and hold the bot's queue
            return WebhookParse(ignored=(out_of_range,))
        kind = _update_kind(update)
        if kind == "callback_query":
            return self._press(update, received_at)
        if kind in _CHANNEL_POST_KINDS:
            return WebhookParse(ignored=(str(kind),))
        if kind == "my_chat_member":
            return self._membership(update, update_id, received_at)
        if kind == "message_reaction":
            return self._reaction(update, update_id, received_at)
        if kind not in _MESSAGE_KINDS:
            return WebhookParse(ignored=(f"unsupported_update:{kind or 'empty'}",))
        message = validate(TgMessage, update[kind], kind)
        skip = _skip_reason(message)
        if skip is not None:
            return WebhookParse(ignored=(skip,))
        content = _content(message)
        if content is None:
            return WebhookParse(ignored=(f"unsupported_content:{_content_key(update[kind])}",))
        return WebhookParse(
            messages=(self._inbound(update, update_id, kind, message, content, received_at),)
        )

    def _membership(
        self, update: dict[str, Any], update_id: int, received_at: float
    ) -> WebhookParse:
        """The user blocked (``kicked``) or unblocked the bot in their private chat; the bot
        joining or leaving a group is no event of a customer's."""
        change = validate(TgChatMemberUpdated, update["my_chat_member"], "my_chat_member")
        status = change.new_chat_member.status
        if change.chat.type != "private":
            return WebhookParse(ignored=(f"group_membership:{status}",))
        if status == "kicked":
            kind: ChannelEventKind = "blocked"
        elif change.old_chat_member.status == "kicked":
            kind = "unblocked"
        else:
            return WebhookParse(ignored=(f"membership:{status}",))
        event = self._event(
            update,
            update_id,
            received_at,
            kind=kind,
            dialog_key=str(change.chat.id),
            customer_id=str(change.from_user.id),
            occurred_at=float(change.date),
        )
        return WebhookParse(events=(event,))

    def _reaction(self, update: dict[str, Any], update_id: int, received_at: float) -> WebhookParse:
        """A user's reaction to a message; the first of the new ones is the reaction, none:
        the reaction was removed."""
        change = validate(TgMessageReactionUpdated, update["message_reaction"], "message_reaction")
        if change.user is None:
            return WebhookParse(ignored=("anonymous_reaction",))
        first = change.new_reaction[0] if change.new_reaction else None
        shown = None if first is None else first.emoji or first.custom_emoji_id or first.type
        event = self._event(
            update,
            update_id,
            received_at,
            kind="reaction",
            dialog_key=str(change.chat.id),
            customer_id=str(change.user.id),
            occurred_at=float(change.date),
            reaction=shown,
            channel_message_ids=(str(change.message_id),),
        )
        return WebhookParse(events=(event,))

    def _event(
        self, update: dict[str, Any], update_id: int, received_at: float, **fields: Any
    ) -> ChannelEvent:
        """A channel event of one update: its id is the update's, like a message's."""
        return ChannelEvent(
            id=inbound_event_id(self.route.connector_id, str(update_id)),
            route=self.route,
            channel_event_id=str(update_id),
            received_at=received_at,
            raw=update,
            **fields,
        )

    def _press(self, update: dict[str, Any], received_at: float) -> WebhookParse:
        """A press of an inline button: the customer's message (the label as its text), and
        the webhook's answer calling ``answerCallbackQuery`` (Telegram runs a method given in
        a webhook's answer; best effort: a lost one only leaves the spinner to time out)."""
        press = callback_press(update)
        if press is None:  # no data (a game) or no message (inline mode): not ours
            return WebhookParse(ignored=("callback_query_without_data",))
        if press.user.is_bot:
            return WebhookParse(ignored=("bot_sender",))
        method, params = answer_call(press)
        answer = orjson.dumps({"method": method, **params})
        message = press_message(self.route, press, received_at)
        return WebhookParse(
            messages=(message.model_copy(update={"raw": update}),),
            reply=WebhookReply(body=answer, content_type="application/json"),
        )

    def _inbound(
        self,
        update: dict[str, Any],
        update_id: int,
        kind: str,
        message: TgMessage,
        content: Content,
        received_at: float,
    ) -> InboundMessage:
        assert message.from_user is not None  # _skip_reason refused messages without one
        return InboundMessage(
            id=inbound_event_id(self.route.connector_id, str(update_id)),
            route=self.route,
            action=_MESSAGE_KINDS[kind],
            dialog_key=str(message.chat.id),
            customer=_customer(message.from_user),
            content=content,
            reply_to_channel_message_id=(
                str(message.reply_to_message.message_id) if message.reply_to_message else None
            ),
            channel_message_id=str(message.message_id),
            channel_event_id=str(update_id),
            order_key=update_id,
            sent_at=float(message.date),
            edited_at=float(message.edit_date) if message.edit_date is not None else None,
            received_at=received_at,
            extras=_extras(message),
            raw=update,
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
        """Send the reply's calls in order. The Bot API has no idempotency key, so the
        channel does not declare ``idempotent_sends``: a repeat would be a second message."""
        calls = _render(target, request)

        async def send_part(index: int) -> str:
            method, params = calls[index]
            return _message_id(method, await self._call(session, method, params))

        return await self._resume.send(target, request, len(calls), send_part)

    async def _call(
        self, session: aiohttp.ClientSession, method: str, params: dict[str, Any]
    ) -> Any:
        """One Bot API call; returns its ``result`` or raises the mapped send error."""
        credentials = self.credentials
        answer = await post(
            session,
            f"{credentials.api_base_url}/bot{credentials.bot_token}/{method}",
            what=f"telegram {method}",
            timeout_s=credentials.request_timeout_s,
            json=params,
            # The URL holds the bot token; some aiohttp errors quote it.
            redact={credentials.bot_token: "<bot_token>"},
        )
        return check_response(method, answer.status, answer.body, answer.headers)


def check_response(
    method: str, status: int, body: bytes, headers: Mapping[str, str] | None = None
) -> Any:
    """Map a Bot API answer to its ``result`` or to the send error the caller can act on.

    Telegram mirrors ``error_code`` in the HTTP status and says ``error_code`` "may change";
    the status and ``parameters`` decide, the ``description`` explains. A throttled call
    waits ``parameters.retry_after``, else the answer's ``Retry-After`` header (a front
    server's 429 page has only that: docs/channels/telegram.md, "Throttling").
    """
    headers = headers or {}
    payload = json_object(f"telegram {method}", status, body, headers)
    if 200 <= status < 300 and payload.get("ok") is True:
        return payload.get("result")
    description = f"telegram {method}: {payload.get('description') or f'HTTP {status}'}"
    parameters = payload.get("parameters")
    parameters = parameters if isinstance(parameters, dict) else {}
    if status == 429 or payload.get("error_code") == 429:
        retry_after = parameters.get("retry_after")
        if isinstance(retry_after, int | float) and not isinstance(retry_after, bool):
            raise RetryableSendError(description, max(0.0, float(retry_after)))
        raise RetryableSendError(description, retry_after_s(headers))
    if status >= 500:
        raise RetryableSendError(description, retry_after_s(headers))
    if "migrate_to_chat_id" in parameters:
        description += f" (chat migrated to {parameters['migrate_to_chat_id']}; re-key the dialog)"
    raise PermanentSendError(description)


def _message_id(method: str, result: Any) -> str:
    if not isinstance(result, dict) or not isinstance(result.get("message_id"), int):
        raise PermanentSendError(f"telegram {method}: answer without a message_id")
    return str(result["message_id"])


# --- rendering a reply into Bot API calls


def _render(target: DialogTarget, request: ReplyRequest) -> list[tuple[str, dict[str, Any]]]:
    """The calls that carry ``request``, in order (``channels.render``); the first one
    quotes the replied message, the last one carries the buttons (under the whole text).

    ``OutboundFile.name`` is not sent: Telegram names a document fetched by URL itself, and
    renaming would need an upload.
    """
    request, buttons = reply_buttons(TelegramChannel.name, request)
    chat_id = target.dialog_key
    calls = [_call(chat_id, part) for part in render(request, TelegramChannel.capabilities)]
    if request.reply_to_channel_message_id is not None:
        calls[0][1]["reply_parameters"] = _reply_parameters(request.reply_to_channel_message_id)
    calls[-1][1].update(buttons)
    return calls


def _call(chat_id: str, part: Part) -> tuple[str, dict[str, Any]]:
    """Texts and captions are Telegram's HTML (``channels.render``: escaped, tags balanced
    in every part), so each goes with ``parse_mode=HTML``."""
    if isinstance(part, TextPart):
        return "sendMessage", {"chat_id": chat_id, "text": part.text, "parse_mode": "HTML"}
    method, field = ("sendPhoto", "photo") if part.kind == "image" else ("sendDocument", "document")
    params: dict[str, Any] = {"chat_id": chat_id, field: part.url}
    if part.caption:
        params.update(caption=part.caption, parse_mode="HTML")
    return method, params


def _reply_parameters(message_id: str) -> dict[str, Any]:
    try:
        quoted = int(message_id)
    except ValueError:
        raise PermanentSendError(
            f"reply_to_channel_message_id {message_id!r} is not a Telegram message id"
        ) from None
    # Quote when the original still exists, send plainly when it was deleted.
    return {"message_id": quoted, "allow_sending_without_reply": True}


# --- normalizing an update


def _decode_update(body: bytes) -> tuple[dict[str, Any], int]:
    """The update as a dict (kept whole for ``raw``) and its ``update_id``."""
    update = decode_json(body)
    if not isinstance(update, dict):
        raise ValidationFailedError(f"update: expected a JSON object, got {type(update).__name__}")
    return update, validate(TgUpdate, update, "update").update_id


def _update_kind(update: dict[str, Any]) -> str | None:
    """Which optional field the update carries (Telegram sends at most one)."""
    for kind in (*_MESSAGE_KINDS, *_CHANNEL_POST_KINDS):
        if kind in update:
            return kind
    return next((key for key in update if key != "update_id"), None)


def _skip_reason(message: TgMessage) -> str | None:
    """Why a message is not a customer's message, or ``None`` when it is one."""
    if message.sender_chat is not None:
        return "chat_sender"  # anonymous group admin or a linked channel's post
    if message.from_user is None:
        return "no_sender"
    if message.from_user.is_bot:
        return "bot_sender"
    return None


def _content_key(data: dict[str, Any]) -> str:
    return next((key for key in data if key not in ENVELOPE_KEYS), "empty")


def _content(message: TgMessage) -> Content | None:
    """The universal content of a message, or ``None`` for kinds we do not carry.

    Order matters: an animation also carries ``document`` and a venue also ``location``
    (Bot API backward compatibility), so the specific kind is tested first.
    """
    caption = message.caption
    if message.text is not None:
        return TextContent(text=message.text)
    if message.photo:
        largest = max(message.photo, key=lambda size: (size.width or 0) * (size.height or 0))
        return ImageContent(file=largest.ref(), caption=caption)
    if message.animation:
        return VideoContent(file=message.animation.ref(), caption=caption)
    if message.document:
        return FileContent(file=message.document.ref(), caption=caption)
    if message.audio:
        return AudioContent(file=message.audio.ref(), caption=caption)
    if message.voice:
        return AudioContent(file=message.voice.ref(), caption=caption, is_voice=True)
    if message.video:
        return VideoContent(file=message.video.ref(), caption=caption)
    if message.video_note:
        return VideoContent(file=message.video_note.ref("video/mp4"))
    if message.sticker:
        return StickerContent(file=message.sticker.ref(), emoji=message.sticker.emoji)
    if message.venue:
        return _location(message.venue.location, message.venue.title, message.venue.address)
    if message.location:
        return _location(message.location, None, None)
    if message.contact:
        return _contact(message.contact)
    return None


def _location(point: TgLocation, title: str | None, address: str | None) -> LocationContent:
    return LocationContent(
        latitude=point.latitude, longitude=point.longitude, title=title, address=address
    )


def _contact(contact: TgContact) -> ContactContent:
    return ContactContent(
        phone=contact.phone_number,
        first_name=contact.first_name,
        last_name=contact.last_name,
        channel_user_id=str(contact.user_id) if contact.user_id is not None else None,
    )


def _customer(user: TgUser) -> Customer:
    name = " ".join(part for part in (user.first_name, user.last_name) if part)
    return Customer(
        channel_user_id=str(user.id),
        name=name or None,
        username=user.username,
        profile_url=f"https://t.me/{user.username}" if user.username else None,
        language=user.language_code,
    )


def _extras(message: TgMessage) -> dict[str, str]:
    extras = {"chat_type": message.chat.type}
    if message.chat.title is not None:
        extras["chat_title"] = message.chat.title
    if message.media_group_id is not None:
        extras["media_group_id"] = message.media_group_id
    if message.message_thread_id is not None:
        extras["message_thread_id"] = str(message.message_thread_id)
    if message.animation is not None:
        extras["video_kind"] = "animation"
    elif message.video_note is not None:
        extras["video_kind"] = "video_note"
    return extras
