"""The sample portal (``openlines sample-portal``) prints customers' text as they wrote it."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from engine.portal_side import PortalSide
from engine.protocol.sample_batch import BATCH_ID, PORTAL_ID, sample_plaintext
from engine.sample_portal import event_line, make_app
from engine.security.sealing import seal_and_sign
from tests.engine.protocol_kit import published_vectors

TEXT = "Здравствуйте! Где мой заказ? 📦"
PORTAL_KEY = X25519PrivateKey.generate()
ENGINE_KEY = Ed25519PrivateKey.generate()


@pytest.fixture
async def sample_portal() -> AsyncIterator[TestServer]:
    side = PortalSide(PORTAL_ID, PORTAL_KEY, ENGINE_KEY.public_key(), "license")
    server = TestServer(make_app(side), host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


def test_a_message_line_shows_the_text_itself() -> None:
    message = published_vectors()["delivery"]["batch"]["events"][2]
    line = event_line(message)
    assert TEXT in line
    assert "\\u" not in line
    assert line.startswith(f"#3 message.received dialog={message['dialog']['id']} operator=None:")
    assert json.loads(line.split(": ", 1)[1]) == {"kind": "text", "text": TEXT}


async def test_a_delivery_is_printed_as_text(
    sample_portal: TestServer, capsys: pytest.CaptureFixture[str]
) -> None:
    plaintext = sample_plaintext()
    now_s = int(time.time())  # the sample portal checks signatures against its own clock
    headers, body = seal_and_sign(
        PORTAL_ID, BATCH_ID, plaintext, PORTAL_KEY.public_key(), ENGINE_KEY, now_s
    )
    async with aiohttp.ClientSession() as session:
        for _ in range(2):  # the second time, as a retry: answered, not printed again
            async with session.post(
                sample_portal.make_url("/openlines"), data=body, headers=headers
            ) as response:
                assert response.status == 204
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(" dialog=")[0] for line in printed] == [
        "#1 dialog.queued",
        "#2 dialog.offered",
        "#3 message.received",
    ]
    assert printed[2].endswith(f'{{"kind": "text", "text": "{TEXT}"}}')
    assert "\\u" not in "".join(printed)


def test_script_and_terminal_injection_in_a_widget_visitors_text_prints_as_one_inert_line() -> None:
    """The sample portal's page is a terminal: markup stays text and control characters
    (an ANSI escape, a carriage return, a new line) are printed escaped, so a visitor cannot
    forge lines or recolour the operator's screen."""
    attack = "<script>alert(1)</script>\x1b[2J\x1b[31mfake\r\n#9 message.received forged"
    event = {
        "seq": 1,
        "type": "message.received",
        "dialog": {"id": "dlg_1", "operator_id": None},
        "data": {"content": {"kind": "text", "text": attack}},
    }
    line = event_line(event)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "<script>alert(1)</script>" in line and "\\u001b[2J" in line
    assert json.loads(line.split(": ", 1)[1])["text"] == attack
