"""The channel plug-in contract.

A channel turns one provider's webhooks into universal ``InboundMessage`` objects and one
operator reply into the provider's API calls. It knows nothing of Ray, storage or portals:
the engine hands it the raw request and, for sending, an ``aiohttp.ClientSession``.

The whole contract, with what each hook may raise and what the engine does then, is
docs/channels/contract.md. Inbound, the engine calls, in this order, and only moves on when
the step succeeded:

1. ``verify(request)``: authenticity on the raw bytes; raise ``AuthError`` (401).
2. ``parse(request, received_at)``: decode and normalize; raise ``BadRequestError`` (400)
   for a body that is not the provider's JSON, ``ValidationFailedError`` (422) for JSON
   that is not the provider's model. Customer messages go to ``WebhookParse.messages``,
   the provider's other events it can use (receipts, failures, reactions, typing, blocks,
   opt-ins) to ``WebhookParse.events`` as ``ChannelEvent``; what it cannot use is named in
   ``WebhookParse.ignored`` with a reason (the provider still gets 2xx).
3. The engine stores messages and events durably, then answers with
   ``acknowledge(parsed, stored)``, by default ``WebhookParse.reply``.

A GET on the connector's webhook is the provider's handshake: ``handshake(request)``
answers it (Meta's ``hub.challenge``) or raises; by default the channel has none (405).

A channel whose provider posts one webhook per app for many connectors (Meta) sets
``app_webhook`` and implements ``split_app_webhook`` and ``routing_ids``: the engine serves
``/hooks/{channel}``, splits the body into each connector's part by the ids inside,
verifies the whole body once per distinct ``verification_key`` and parses each part with
its connector's channel (docs/channels/contract.md, "One webhook for many connectors").

Outbound, ``send`` renders the reply for what the channel can carry and raises
``RetryableSendError`` or ``PermanentSendError`` (see ``engine.errors``) when it fails. The
engine records each attempt before calling ``send``; when a restart cuts an attempt short it
calls ``send`` again with the same ``reply_id`` only if the channel declares
``idempotent_sends``, and otherwise tells the portal ``reply.uncertain``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, ClassVar

import aiohttp
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from channels.render import Capabilities as Capabilities  # the contract's, re-exported
from engine.clock import Clock
from engine.delivery.send_rates import SendRate
from engine.errors import (
    ConflictError,
    MediaLinkError,
    MethodNotAllowedError,
    NotFoundError,
    PermanentSendError,
)
from engine.models import (
    ChannelEvent,
    DialogTarget,
    InboundMessage,
    ReplyRequest,
    Route,
    SentReceipt,
)
from engine.routing.windows import ReplyWindow as ReplyWindow  # the contract's, re-exported

ORDER_KEY_MAX = 2**63 - 1
"""The largest order key the store keeps (SQLite's INTEGER). A provider number above it is
refused at the channel's edge: inside a group commit it would fail every webhook of the
group (STYLE.md, lessons)."""


def order_key_out_of_range(name: str, value: int, top: int = ORDER_KEY_MAX) -> str | None:
    """The ignore reason for a provider's ordering number the engine cannot keep, or None.

    Channels whose provider retries anything but a success answer with it and a 2xx (the
    update is counted as ignored), so a bad number is not retried forever.
    """
    return None if 0 <= value <= top else f"out_of_range:{name}"


class Credentials(BaseModel):
    """Base of every channel's credentials model: our config, so unknown fields are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _without_trailing_slash(url: str) -> str:
    return url.rstrip("/")


ApiBaseUrl = Annotated[str, Field(pattern=r"^https?://"), AfterValidator(_without_trailing_slash)]
"""A provider's API root in credentials (overridden to point at a local server or a test
stand-in); the trailing slash is dropped so paths are appended with one."""


@dataclass(frozen=True)
class RawRequest:
    """An inbound HTTP request as received: headers looked up case-insensitively (give
    lower-cased names when building one by hand), body untouched."""

    method: str
    path: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class WebhookReply:
    """What the provider must get back once the messages are stored."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"


@dataclass(frozen=True)
class WebhookParse:
    """The outcome of parsing one webhook request."""

    messages: tuple[InboundMessage, ...] = ()
    events: tuple[ChannelEvent, ...] = ()
    """The provider's events that are not customer messages, stored like messages (durably,
    de-duplicated on ``channel_event_id``) and delivered as ``channel.event``."""
    ignored: tuple[str, ...] = ()
    reply: WebhookReply = field(default_factory=WebhookReply)


@dataclass(frozen=True)
class VerifyContext:
    """What ``authenticate`` may use to prove a request: an HTTP session to fetch the
    provider's keys and the engine's clock for how long to keep them (``channels.key_cache``)."""

    session: aiohttp.ClientSession
    clock: Clock


@dataclass(frozen=True)
class MediaSource:
    """Where a file a customer sent can be downloaded, and how (docs/channels/media.md).

    ``url`` and ``headers`` may hold the connector's secrets (Telegram's file URL holds the
    bot token): the engine fetches them itself and never shows them.
    """

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    name: str | None = None
    mime_type: str | None = None
    size_bytes: int | None = None


@dataclass(frozen=True)
class PollResult:
    """One poll of a polling connector (docs/channels/contract.md, "Polling").

    ``parsed`` holds what the poll fetched, as a webhook would have; ``cursor`` is where the
    next poll starts, stored in the same transaction as the items, so a crash repeats no item
    and skips none; ``more``: another page waits, poll again at once.
    """

    parsed: WebhookParse
    cursor: str | None
    more: bool = False


@dataclass(frozen=True)
class AppWebhookPart:
    """The part of an app-level webhook that belongs to one connector: its ``routing_id``
    (a page id, an Instagram account id, a ``phone_number_id``) and a request carrying only
    its entries, in the provider's own envelope, for that connector's ``parse``."""

    routing_id: str
    request: RawRequest


class Channel(ABC):
    """One connector's view of a provider: its route, credentials and wire format."""

    name: ClassVar[str]
    credentials_model: ClassVar[type[Credentials]]
    capabilities: ClassVar[Capabilities]
    webhook_content_type: ClassVar[str] = "application/json"
    """The media type the provider posts; anything else is refused with 415."""
    idempotent_sends: ClassVar[bool] = False
    """True when ``send`` may be repeated with the same ``reply_id`` without the customer
    seeing the reply twice: the provider (or the receiver) drops a repeat it recognises.
    Declare it only when that holds for every part of every reply, also after a restart."""
    shows_sender: ClassVar[bool] = False
    """True when the customer sees who sent each reply (a per-message sender name and
    avatar: the widget): the reply then carries the line's persona as ``request.sender``.
    False for messengers, where a bot sends every reply, so the persona's name goes before
    the text (docs/routing.md, "Persona")."""
    send_rate: ClassVar[SendRate] = SendRate()
    """The provider's send limits, per connector and per chat: the reply sender paces each
    attempt to them (``engine.delivery.send_rates``); none by default."""

    def send_rate_for(self, target: DialogTarget) -> SendRate:
        """The limits of a send to ``target``: ``send_rate``, unless a channel's limits
        differ by dialog (Instagram's private comment replies, a ``KeptRate``)."""
        return self.send_rate

    app_webhook: ClassVar[bool] = False
    """True when the provider posts one webhook per app carrying entries of many connectors
    (Meta): the engine then also serves ``/hooks/{channel}`` (POST and the GET handshake)
    through ``split_app_webhook``, ``routing_ids`` and ``verification_key``."""
    app_reply: ClassVar[WebhookReply] = WebhookReply()
    """What an app-level webhook is answered once every part is stored."""
    connect_model: ClassVar[type[BaseModel] | None] = None
    """What ``openlines connect <channel>`` asks for (a bot token, a group id, ...): each
    field is a command-line option and a key of the admin API's ``settings``; None: the
    channel cannot be connected in one step (docs/channels/contract.md, "Connecting")."""
    reply_window_s: ClassVar[float | None] = None
    """The provider's messaging window of a direct conversation: replies are taken only this
    long after the customer's last message; None: no window. ``reply_window_for`` reads it
    unless the channel's windows differ per connector or dialog."""

    def __init__(self, route: Route, credentials: Credentials) -> None:
        if not isinstance(credentials, self.credentials_model):
            raise TypeError(f"{self.name} needs {self.credentials_model.__name__}")
        self.route = route
        self.credentials = credentials

    def reply_window_for(self, dialog_key: str) -> ReplyWindow | None:
        """The messaging window of one of this connector's dialogs; None: replies are taken
        at any time. A reply after it is refused before it is stored (409
        ``window_closed``, docs/channels/contract.md, "Messaging windows"). The default:
        ``reply_window_s`` for every dialog."""
        seconds = self.reply_window_s
        return None if seconds is None else ReplyWindow(seconds)

    def outside_window_form(self, dialog_key: str) -> str | None:
        """The form in which this connector carries a reply to the dialog after its
        messaging window closed (WhatsApp: ``template``, the connector's template message);
        None, the default: it cannot, and such a reply is refused (409 ``window_closed``).
        A channel that names a form implements ``send_outside_window``."""
        return None

    async def send_outside_window(
        self,
        session: aiohttp.ClientSession,
        target: DialogTarget,
        request: ReplyRequest,
        *,
        reply_id: str,
    ) -> SentReceipt:
        """Deliver a reply the engine accepted after the dialog's window closed
        (``request.outside_window_form`` names the form ``outside_window_form`` gave), with
        the errors ``send`` maps; the receipt names the form and template used."""
        raise PermanentSendError(f"{self.name} cannot send a reply outside the messaging window")

    async def show_typing(self, customer_id: str, operator_id: str) -> None:
        """Show the customer that ``operator_id`` is typing (the portal API's ``typing``
        call). Only a channel that can show it overrides this; the others refuse."""
        raise ConflictError(
            f"{self.name} cannot show that an operator is typing", "typing_unsupported"
        )

    @classmethod
    def build(cls, route: Route, credentials: Credentials, data_dir: Path | None) -> Channel:
        """The channel of one connector. A channel that keeps files of its own (the
        widget's log) overrides it to open them under the engine's ``data_dir``."""
        return cls(route, credentials)

    @abstractmethod
    def verify(self, request: RawRequest) -> None:
        """Prove the request comes from the provider; raise ``AuthError`` otherwise."""

    async def authenticate(self, request: RawRequest, context: VerifyContext) -> None:
        """What the engine awaits to prove a request: ``verify`` unless the proof needs I/O
        (a provider signing with keys it publishes and rotates: fetch them through a
        ``channels.key_cache.KeyCache`` kept on the channel). Raise ``AuthError`` (401), or
        ``UnavailableError`` (503, the provider retries) when the keys cannot be had."""
        self.verify(request)

    @abstractmethod
    def parse(self, request: RawRequest, received_at: float) -> WebhookParse:
        """Normalize a verified request into universal messages and events."""

    def handshake(self, request: RawRequest) -> WebhookReply:
        """Answer the provider's GET on the webhook (a subscription check such as Meta's
        ``hub.mode=subscribe``/``hub.verify_token``/``hub.challenge``).

        Raise ``ForbiddenError`` (403) when the request does not prove it knows the
        connector's verify token, ``BadRequestError`` (400) when it is not a handshake.
        The default: the channel has no handshake, 405.
        """
        raise MethodNotAllowedError(f"{self.name} webhooks take no GET")

    # --- polling (docs/channels/contract.md, "Polling")

    @property
    def poll_interval_s(self) -> float | None:
        """How often the engine polls this connector (from its credentials); None: it
        does not poll. One loop per connector, run by channel actor 0 alone."""
        return None

    async def poll(
        self, session: aiohttp.ClientSession, cursor: str | None, received_at: float
    ) -> PollResult:
        """Fetch what arrived after ``cursor`` (None: the first poll) and normalize it.

        Return a cursor such that every item not in this result comes after it; items at the
        cursor fetched again are fine (they are de-duplicated on ``channel_event_id``). Raise
        any ``EngineError`` when the provider fails: the loop logs it, counts it, and polls
        again from the same cursor at the next interval.
        """
        raise NotFoundError(f"{self.name} does not poll")

    # --- customers' media (docs/channels/media.md)

    async def media_source(self, session: aiohttp.ClientSession, file_id: str) -> MediaSource:
        """Where the file ``file_id`` of this connector is downloaded from, asked at the
        moment of the download. Raise ``PermanentSendError`` for a file the provider no
        longer has, ``RetryableSendError`` when it did not answer."""
        raise MediaLinkError(f"{self.name} does not fetch media", "not_fetchable")

    # --- connecting in one step (``connect_model``)

    @classmethod
    async def prepare_connect(
        cls, session: aiohttp.ClientSession, given: BaseModel
    ) -> dict[str, object]:
        """Check what the user gave with the provider (the token works, has the permissions
        the engine needs) and return the credentials to store, secrets generated; raise
        ``ProviderSetupError`` with what is wrong. The connector is stored next, so its
        webhook answers before ``subscribe`` points the provider at it."""
        raise NotFoundError(f"{cls.name} cannot be connected in one step")

    async def subscribe(
        self, session: aiohttp.ClientSession, webhook_url: str
    ) -> dict[str, object]:
        """Point the provider's webhook at ``webhook_url``; returns credential fields to add
        (an id the provider gave the subscription, needed to undo it), or ``{}``."""
        raise NotFoundError(f"{self.name} cannot be connected in one step")

    async def unsubscribe(self, session: aiohttp.ClientSession, webhook_url: str) -> None:
        """Undo ``subscribe``: the provider stops posting to the engine."""
        raise NotFoundError(f"{self.name} cannot be disconnected in one step")

    # --- one webhook for many connectors (``app_webhook``)

    @classmethod
    def split_app_webhook(cls, request: RawRequest) -> list[AppWebhookPart]:
        """The app-level body's entries grouped by the connector ids inside, in the order
        they came. Called before ``verify``: the ids choose whose secret verifies the body,
        so it only decodes and reads ids (400/422 for a body that is not the provider's).
        """
        raise NotFoundError(f"{cls.name} has no app-level webhook")

    @property
    def routing_ids(self) -> frozenset[str]:
        """The ids inside an app-level webhook whose entries belong to this connector."""
        return frozenset()

    @property
    def verification_key(self) -> str:
        """Who can verify an app-level body: connectors sharing one (the same app secret)
        verify it once between them. The default, the connector id, verifies per connector.
        """
        return self.route.connector_id

    def acknowledge(self, parsed: WebhookParse, stored: Sequence[bool]) -> WebhookReply:
        """The provider's answer, once ``parsed.messages`` are durably appended.

        Called after the durable append with, per parsed message, ``True`` if it was newly
        stored and ``False`` if it was a duplicate (a provider's retry). Not called when the
        append failed: the provider then gets an error and retries. The default answers
        ``parsed.reply``; a channel whose API reports the counts overrides it.
        """
        return parsed.reply

    @abstractmethod
    async def send(
        self,
        session: aiohttp.ClientSession,
        target: DialogTarget,
        request: ReplyRequest,
        *,
        reply_id: str,
    ) -> SentReceipt:
        """Deliver a reply to the customer; map the provider's errors.

        ``reply_id`` is the engine's id of the reply, the same on every attempt and across
        restarts: what a channel with ``idempotent_sends`` derives its idempotency key from.
        """
