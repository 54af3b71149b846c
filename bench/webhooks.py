"""Real-format, correctly signed provider webhooks for load.

One class per channel builds the requests Telegram, VK and Viber would post (channels.md
sections 1-3), authenticated the way each channel's ``verify`` checks them, plus the
connector's config entry with the bench credentials that match.

A request is addressed by four numbers the load generator hands in:

* ``index``: unique over the run, so it makes the channel's de-duplication key;
* ``chat``: the chat number, mapped to a chat id per channel and back by ``chat_number``;
* ``seq_in_chat``: 1 for a chat's first message, 2 for its second, ...;
* ``sent_ns``: ``time.monotonic_ns()`` at send, written into the text as ``"lt=<sent_ns> "``
  so a portal sink computes webhook-to-portal latency from the delivered event alone.
  ``CLOCK_MONOTONIC`` is machine-wide on Linux, so the sink may run in another process.

Per-chat order holds when a chat's messages get increasing ``index`` (the load generator
uses ``index = (seq_in_chat - 1) * chats + chat``): Telegram orders by ``update_id`` and
Viber by ``timestamp``, both derived from ``index``; VK by ``conversation_message_id``,
which is ``seq_in_chat``.

``run_id`` (0 to 99) shifts every dedup key and chat id, so a second run against an engine
that kept its data is neither dropped as duplicates nor seen as going back in a dialog.

Bodies come from byte templates: every value put in is an int or fixed ASCII, so no JSON
escaping is needed and a request costs a few microseconds.
"""

from __future__ import annotations

import hmac
import time
from abc import ABC, abstractmethod
from typing import ClassVar

JSON_TYPE = "application/json"
# Outbound calls of a bench connector go to the discard port on loopback, never to a
# provider: a benchmark must not reach the internet even when something replies.
LOOPBACK_API = "http://127.0.0.1:9"
FILLER = b"Hello, is my order shipped yet? I paid for express delivery last week."
CHATS_PER_RUN = 10_000_000
"""Chat numbers must stay below this; ``run_id`` steps chat ids by it."""
MAX_RUN_ID = 99


class Webhooks(ABC):
    """A channel's webhook builder: connector config, webhook path and requests."""

    channel: ClassVar[str]

    def __init__(self, run_id: int = 0) -> None:
        if not 0 <= run_id <= MAX_RUN_ID:
            raise ValueError(f"run_id must be 0..{MAX_RUN_ID}, got {run_id}")
        self.run_id = run_id

    @abstractmethod
    def credentials(self) -> dict[str, object]:
        """Bench credentials the channel's credentials model accepts."""

    @abstractmethod
    def request(
        self, index: int, chat: int, seq_in_chat: int, sent_ns: int
    ) -> tuple[dict[str, str], bytes]:
        """Headers (content type and the channel's auth) and body of one message webhook."""

    @abstractmethod
    def chat_number(self, dialog_key: str) -> int:
        """The chat number a delivered event's ``dialog_key`` belongs to."""

    def connector_config(
        self, connector_id: str, portal_id: str, line_id: str
    ) -> dict[str, object]:
        """The engine config entry of a connector that accepts this builder's requests."""
        return {
            "id": connector_id,
            "channel": self.channel,
            "portal": portal_id,
            "line": line_id,
            "credentials": self.credentials(),
        }

    def path(self, connector_id: str) -> str:
        return f"/hooks/{self.channel}/{connector_id}"


def _text(sent_ns: int) -> bytes:
    return b"lt=%d %s" % (sent_ns, FILLER)


def latency_stamp_ns(text: str) -> int:
    """The ``sent_ns`` a bench message carries at the start of its text."""
    if not text.startswith("lt="):
        raise ValueError(f"not a bench message text: {text[:40]!r}")
    return int(text[3 : text.index(" ")])


class TelegramWebhooks(Webhooks):
    """Private-chat text updates; ``update_id`` is the dedup key and the order."""

    channel = "telegram"
    BOT_TOKEN = "123456789:bench-bot-token"
    SECRET_TOKEN = "bench-telegram-secret-token"
    CHAT_BASE = 5_000_000_000
    _TEMPLATE = (
        b'{"update_id":%d,"message":{"message_id":%d,'
        b'"from":{"id":%d,"is_bot":false,"first_name":"Bench","last_name":"User %d",'
        b'"language_code":"en"},'
        b'"chat":{"id":%d,"first_name":"Bench","last_name":"User %d","type":"private"},'
        b'"date":%d,"text":"%s"}}'
    )

    def __init__(self, run_id: int = 0) -> None:
        super().__init__(run_id)
        self._headers = {
            "Content-Type": JSON_TYPE,
            "X-Telegram-Bot-Api-Secret-Token": self.SECRET_TOKEN,
        }
        self._chat_base = self.CHAT_BASE + run_id * CHATS_PER_RUN
        self._update_base = run_id * 10**12

    def credentials(self) -> dict[str, object]:
        return {
            "bot_token": self.BOT_TOKEN,
            "secret_token": self.SECRET_TOKEN,
            "api_base_url": LOOPBACK_API,
        }

    def request(
        self, index: int, chat: int, seq_in_chat: int, sent_ns: int
    ) -> tuple[dict[str, str], bytes]:
        chat_id = self._chat_base + chat
        body = self._TEMPLATE % (
            self._update_base + index,
            seq_in_chat,
            chat_id,
            chat,
            chat_id,
            chat,
            int(time.time()),
            _text(sent_ns),
        )
        return self._headers, body

    def chat_number(self, dialog_key: str) -> int:
        """The chat number of a delivered event's ``dialog_key`` (the chat id)."""
        return (int(dialog_key) - self.CHAT_BASE) % CHATS_PER_RUN


class VkWebhooks(Webhooks):
    """``message_new`` events (API 5.199 shape) from private dialogs.

    ``event_id`` (40 hex digits, like VK's) is the dedup key; ``conversation_message_id`` is
    ``seq_in_chat``, VK's own per-dialog counter and the channel's order.
    """

    channel = "vk"
    ACCESS_TOKEN = "bench-vk-access-token"
    SECRET = "bench-vk-secret"
    CONFIRMATION_CODE = "bench0ok"
    GROUP_ID = 193668024
    PEER_BASE = 300_000_000  # user ids: run_id * CHATS_PER_RUN stays below 2e9 (chat peers)
    _TEMPLATE = (
        b'{"group_id":%d,"type":"message_new","event_id":"%08x%032x","v":"5.199",'
        b'"object":{"message":{"date":%d,"from_id":%d,"id":%d,"out":0,"attachments":[],'
        b'"conversation_message_id":%d,"fwd_messages":[],"important":false,"is_hidden":false,'
        b'"peer_id":%d,"random_id":0,"text":"%s"},'
        b'"client_info":{"button_actions":["text"],"keyboard":true,"inline_keyboard":true,'
        b'"carousel":true,"lang_id":0}},'
        b'"secret":"%s"}'
    )

    def __init__(self, run_id: int = 0) -> None:
        super().__init__(run_id)
        self._headers = {"Content-Type": JSON_TYPE}
        self._peer_base = self.PEER_BASE + run_id * CHATS_PER_RUN
        self._secret = self.SECRET.encode()

    def credentials(self) -> dict[str, object]:
        return {
            "access_token": self.ACCESS_TOKEN,
            "secret": self.SECRET,
            "confirmation_code": self.CONFIRMATION_CODE,
            "group_id": self.GROUP_ID,
            "api_base_url": LOOPBACK_API,
        }

    def request(
        self, index: int, chat: int, seq_in_chat: int, sent_ns: int
    ) -> tuple[dict[str, str], bytes]:
        peer_id = self._peer_base + chat
        body = self._TEMPLATE % (
            self.GROUP_ID,
            self.run_id,
            index,
            int(time.time()),
            peer_id,
            index + 1,  # the global message id, never 0 in a private dialog
            seq_in_chat,
            peer_id,
            _text(sent_ns),
            self._secret,
        )
        return self._headers, body

    def chat_number(self, dialog_key: str) -> int:
        """The chat number of a delivered event's ``dialog_key`` (the ``peer_id``)."""
        return (int(dialog_key) - self.PEER_BASE) % CHATS_PER_RUN


class ViberWebhooks(Webhooks):
    """``message`` callbacks with text, signed with HMAC-SHA256 of the body.

    ``message_token`` is the dedup key; ``timestamp`` is a fixed base plus ``index``
    milliseconds, strictly increasing in a chat, so the channel's order key is too. It runs
    ahead of the wall clock by one millisecond per message: the channel only orders by it.
    """

    channel = "viber"
    AUTH_TOKEN = "bench-viber-auth-token-0123456789"
    BASE_MS = 1_776_000_000_000
    TOKEN_BASE = 5_000_000_000_000_000_000
    _TEMPLATE = (
        b'{"event":"message","timestamp":%d,"chat_hostname":"SN-CHAT-02_","message_token":%d,'
        b'"sender":{"id":"%s","name":"Bench User %d","language":"en","country":"GB",'
        b'"api_version":10},'
        b'"message":{"text":"%s","type":"text"},"silent":false}'
    )

    def __init__(self, run_id: int = 0) -> None:
        super().__init__(run_id)
        self._key = self.AUTH_TOKEN.encode()
        self._token_base = self.TOKEN_BASE + run_id * 10**12

    def credentials(self) -> dict[str, object]:
        return {"auth_token": self.AUTH_TOKEN, "api_base_url": LOOPBACK_API}

    def sender_id(self, chat: int) -> str:
        """A subscriber id in Viber's base64-like shape; the digits are run and chat."""
        return f"bnch{self.run_id:02d}{chat:07d}ZZZ=="

    def request(
        self, index: int, chat: int, seq_in_chat: int, sent_ns: int
    ) -> tuple[dict[str, str], bytes]:
        body = self._TEMPLATE % (
            self.BASE_MS + index,
            self._token_base + index,
            self.sender_id(chat).encode(),
            chat,
            _text(sent_ns),
        )
        signature = hmac.digest(self._key, body, "sha256").hex()
        return {"Content-Type": JSON_TYPE, "X-Viber-Content-Signature": signature}, body

    def chat_number(self, dialog_key: str) -> int:
        """The chat number of a delivered event's ``dialog_key`` (the sender id)."""
        return int(dialog_key[6:13])


WEBHOOKS: dict[str, type[Webhooks]] = {
    cls.channel: cls for cls in (TelegramWebhooks, VkWebhooks, ViberWebhooks)
}


def webhooks_for(channel: str, run_id: int = 0) -> Webhooks:
    """The webhook builder of ``channel`` (telegram, vk or viber)."""
    try:
        cls = WEBHOOKS[channel]
    except KeyError:
        raise ValueError(f"no bench webhooks for {channel!r}; known: {sorted(WEBHOOKS)}") from None
    return cls(run_id)
