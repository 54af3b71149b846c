"""What the one-process tests of Meta's channels share: the app's credentials, posting a
signed app-level webhook and replying as the portal (tests/engine/test_meta_*.py)."""

from __future__ import annotations

from typing import Any

from tests.engine.one_process import Served
from tests.engine.web_kit import portal_call
from tests.standins.meta_api import APP_ID, APP_SECRET, VERIFY_TOKEN, post_notification
from tests.standins.portal import PortalStandIn

APP = {"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN, "app_id": APP_ID}


async def post(served: Served, product: str, body: dict[str, Any]) -> None:
    """``body`` signed like Meta's to ``/hooks/<product>``; Meta's 200 ``EVENT_RECEIVED``."""
    hook = f"{served.url}/hooks/{product}"
    assert await post_notification(served.session, hook, body) == (200, "EVENT_RECEIVED")


async def portal_reply(
    served: Served, portal: PortalStandIn, dialog_id: str, text: str
) -> tuple[int, Any]:
    """The portal's text reply in the dialog (signed at real time, as the engine checks)."""
    return await portal_call(
        served,
        portal,
        "POST",
        f"/api/v1/dialogs/{dialog_id}/messages",
        {"content": {"kind": "text", "text": text}},
    )


async def reply(served: Served, portal: PortalStandIn, dialog_id: str, text: str) -> None:
    """A reply the engine takes (202)."""
    status, body = await portal_reply(served, portal, dialog_id, text)
    assert status == 202, body
