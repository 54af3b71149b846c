"""Instagram's echoes end to end in one process: a reply typed in the Instagram app reaches the
portal as ``sent_elsewhere``; the echoes of the engine's own replies never do, also when the
echo comes while the reply's Send API answer is still on its way
(docs/channels/instagram.md, "Echoes")."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.clock import ManualClock
from tests.engine.meta_kit import APP, reply
from tests.engine.meta_kit import post as post_meta
from tests.engine.one_process import Served
from tests.engine.web_kit import connector, serving
from tests.standins.meta_api import (
    IG_ACCOUNT_ID,
    IG_TOKEN,
    MetaGraphStandIn,
    messaging_entry,
    notification,
)
from tests.standins.portal import PortalStandIn

IGSID = "6917324161655021"


@pytest.fixture
async def served(
    tmp_path: Path,
    clock: ManualClock,
    session: aiohttp.ClientSession,
    portal: PortalStandIn,
    graph: MetaGraphStandIn,
) -> AsyncIterator[Served]:
    ig = connector(
        "ig",
        "instagram",
        **APP,
        graph_api_url=graph.graph_api_url,
        account_id=IG_ACCOUNT_ID,
        access_token=IG_TOKEN,
    )
    async with serving(tmp_path, clock, session, portal, [ig]) as running:
        yield running


def direct(message: dict[str, Any], *, echo: bool = False) -> dict[str, Any]:
    sender, recipient = (IG_ACCOUNT_ID, IGSID) if echo else (IGSID, IG_ACCOUNT_ID)
    event = {
        "sender": {"id": sender},
        "recipient": {"id": recipient},
        "timestamp": int(time.time() * 1000),
        "message": {**message, **({"is_echo": True} if echo else {})},
    }
    return notification("instagram", messaging_entry(IG_ACCOUNT_ID, event))


async def post(served: Served, body: dict[str, Any]) -> None:
    await post_meta(served, "instagram", body)


async def test_our_echoes_stay_ignored_an_instagram_app_reply_reaches_the_operator(
    served: Served, portal: PortalStandIn, graph: MetaGraphStandIn
) -> None:
    await post(served, direct({"mid": "aWdf_in_1", "text": "Есть размер M?"}))
    [first] = await portal.wait_for_events(1, "message.")
    dialog_id = first["dialog"]["id"]

    await reply(served, portal, dialog_id, "Да, есть")
    await portal.wait_for_events(1, "reply.")
    [ours] = graph.message_ids
    await post(served, direct({"mid": ours, "text": "Anna: Да, есть"}, echo=True))

    # A reply whose Send API answer is held: its echo comes first and waits for it.
    sent, release = graph.hold_next_answer()
    await reply(served, portal, dialog_id, "Сейчас проверю")
    await sent.wait()
    held = graph.message_ids[-1]
    await post(served, direct({"mid": held, "text": "Anna: Сейчас проверю"}, echo=True))
    await post(served, direct({"mid": "aWdf_in_2", "text": "Жду 🙏"}))
    await portal.wait_for_events(2, "message.")  # routed after the echo arrived
    assert portal.of_types("channel.") == []
    release.set()
    await portal.wait_for_events(2, "reply.")

    # Someone answers in the Instagram app: the operator sees it.
    await post(served, direct({"mid": "aWdf_app_1", "text": "Это Оля из магазина"}, echo=True))
    [elsewhere] = await portal.wait_for_events(1, "channel.")
    assert elsewhere["data"]["kind"] == "sent_elsewhere"
    assert elsewhere["data"]["channel_message_ids"] == ["aWdf_app_1"]
    assert elsewhere["data"]["extras"] == {"text": "Это Оля из магазина"}
    assert elsewhere["dialog"]["id"] == dialog_id

    await post(served, direct({"mid": "aWdf_in_3", "text": "Спасибо"}))
    await portal.wait_for_events(3, "message.")  # the held echo was decided before this
    kinds = [
        (e["data"]["kind"], e["data"]["channel_message_ids"]) for e in portal.of_types("channel.")
    ]
    assert kinds == [("sent_elsewhere", ["aWdf_app_1"])]
    assert len(portal.of_types("message.")) == 3  # no echo became a customer message
