"""Meta's messaging windows per connector and per dialog, and which of Meta's events open the
window again (docs/channels/facebook.md, "Windows")."""

from __future__ import annotations

from typing import Any

import pytest

from channels.base import Channel
from channels.meta.account_channel import (
    HUMAN_AGENT_WINDOW,
    MESSAGING_WINDOW,
    PRIVATE_REPLY_WINDOW,
)
from channels.meta.comments import comment_dialog_key
from engine.routing.windows import DAY_S, ReplyWindow
from tests.channels import test_facebook, test_instagram, test_whatsapp
from tests.channels.meta_kit import parse_with

DIRECT = "7689966077685933"
COMMENT = comment_dialog_key("690891113073877_759878495960329")


def facebook(**extra: Any) -> Channel:
    return test_facebook.make_channel(**extra)


def instagram(**extra: Any) -> Channel:
    return test_instagram.make_channel(**extra)


@pytest.mark.parametrize(
    ("make", "settings", "dialog_key", "window"),
    [
        (facebook, {}, DIRECT, MESSAGING_WINDOW),
        (facebook, {"message_tag": "HUMAN_AGENT"}, DIRECT, HUMAN_AGENT_WINDOW),
        (facebook, {"message_tag": "ACCOUNT_UPDATE"}, DIRECT, None),
        (facebook, {"message_tag": "POST_PURCHASE_UPDATE"}, DIRECT, None),
        (facebook, {"receive": ("comments",)}, COMMENT, None),
        (
            facebook,
            {"receive": ("comments",), "comment_replies": "private"},
            COMMENT,
            PRIVATE_REPLY_WINDOW,
        ),
        (
            facebook,
            {"message_tag": "HUMAN_AGENT", "receive": ("messages", "comments")},
            COMMENT,
            None,
        ),
        (instagram, {}, "6917324161655021", MESSAGING_WINDOW),
        (instagram, {"message_tag": "HUMAN_AGENT"}, "6917324161655021", HUMAN_AGENT_WINDOW),
        (instagram, {"receive": ("comments",)}, COMMENT, None),
        (
            instagram,
            {"receive": ("comments",), "comment_replies": "private"},
            COMMENT,
            PRIVATE_REPLY_WINDOW,
        ),
    ],
)
def test_each_connector_and_dialog_has_its_window(
    make: Any, settings: dict[str, Any], dialog_key: str, window: ReplyWindow | None
) -> None:
    assert make(**settings).reply_window_for(dialog_key) == window


def test_the_windows_are_metas() -> None:
    assert MESSAGING_WINDOW.seconds == DAY_S and not MESSAGING_WINDOW.one_reply
    assert HUMAN_AGENT_WINDOW.seconds == 7 * DAY_S
    assert PRIVATE_REPLY_WINDOW.seconds == 7 * DAY_S and PRIVATE_REPLY_WINDOW.one_reply


def test_whatsapp_keeps_the_24_hour_window_for_every_customer() -> None:
    channel = test_whatsapp.make_channel()
    assert channel.reply_window_for("16505551234") == ReplyWindow(DAY_S)
    assert channel.reply_window_for("US.1234") == ReplyWindow(DAY_S)


def test_instagram_refuses_a_tag_it_has_not() -> None:
    with pytest.raises(Exception, match="message_tag"):
        instagram(message_tag="ACCOUNT_UPDATE")


@pytest.mark.parametrize(
    ("make", "recorded", "kind", "opens"),
    [
        (facebook, "fb_reaction", "reaction", True),
        (facebook, "fb_delivery", "delivered", False),
        (facebook, "fb_read", "read", False),
        (facebook, "fb_optin", "opted_in", False),
        (facebook, "fb_inbox_echo", "sent_elsewhere", False),
        (instagram, "ig_reaction", "reaction", True),
        (instagram, "ig_unreact", "reaction", False),
        (instagram, "ig_read", "read", False),
    ],
)
def test_a_reaction_opens_the_window_again_receipts_and_echoes_do_not(
    make: Any, recorded: str, kind: str, opens: bool
) -> None:
    [event] = parse_with(make(), recorded).events
    assert (event.kind, event.opens_window) == (kind, opens)


@pytest.mark.parametrize("recorded", ["wa_reaction", "wa_status_delivered", "wa_status_failed"])
def test_whatsapp_events_do_not_open_the_window(recorded: str) -> None:
    """Meta's reference counts only the customer's messages for WhatsApp's window."""
    [event] = parse_with(test_whatsapp.make_channel(), recorded).events
    assert not event.opens_window
