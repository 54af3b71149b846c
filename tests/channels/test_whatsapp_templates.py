"""WhatsApp after the 24-hour window: the connector's template message, sent with the Cloud
API's real ``type: template`` payload to the Graph stand-in (docs/channels/whatsapp.md,
"Outside the window")."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from channels.meta.whatsapp import WhatsAppChannel, WhatsAppCredentials
from channels.meta.whatsapp_templates import WhatsAppTemplate, reply_text, template_message
from engine.errors import PermanentSendError
from engine.models import (
    DialogTarget,
    OutboundContent,
    OutboundFile,
    OutboundImage,
    OutboundText,
    ReplyRequest,
)
from tests.channels.conftest import route_for
from tests.standins.meta_api import (
    APP_SECRET,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    WA_TOKEN,
    MetaGraphStandIn,
)

ROUTE = route_for("whatsapp")
CUSTOMER = "16505551234"
TARGET = DialogTarget(dialog_id="d1", route=ROUTE, dialog_key=CUSTOMER, customer_id="c1")
ORDER_UPDATE = {"name": "order_update", "language": "en_US"}


def channel(graph_api_url: str, template: dict[str, Any] | None = ORDER_UPDATE) -> WhatsAppChannel:
    credentials = WhatsAppCredentials.model_validate(
        {
            "app_secret": APP_SECRET,
            "verify_token": VERIFY_TOKEN,
            "phone_number_id": PHONE_NUMBER_ID,
            "access_token": WA_TOKEN,
            "graph_api_url": graph_api_url,
            "outside_window_template": template,
        }
    )
    return WhatsAppChannel(ROUTE, credentials)


def outside(content: OutboundContent) -> ReplyRequest:
    return ReplyRequest(content=content, outside_window_form="template")


@pytest.mark.parametrize(
    ("content", "one_line"),
    [
        (OutboundText(text="Anna: Ваш заказ готов 📦"), "Anna: Ваш заказ готов 📦"),
        (
            OutboundText(text="Line one\n\nline\ttwo     and five spaces"),
            "Line one line two and five spaces",
        ),
        (
            OutboundImage(url="https://shop.example.com/a.jpg", caption="Navy"),
            "Navy https://shop.example.com/a.jpg",
        ),
        (
            OutboundFile(url="https://shop.example.com/i.pdf", name="invoice.pdf"),
            "https://shop.example.com/i.pdf",
        ),
    ],
)
def test_the_reply_becomes_one_line_of_a_parameter(content: OutboundContent, one_line: str) -> None:
    assert reply_text(outside(content)) == one_line


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        (("{text}",), [{"type": "text", "text": "Hi"}]),
        (
            ("Order desk", "{text}"),
            [{"type": "text", "text": "Order desk"}, {"type": "text", "text": "Hi"}],
        ),
        (("«{text}»",), [{"type": "text", "text": "«Hi»"}]),
    ],
)
def test_the_parameters_are_filled_in_order(
    parameters: tuple[str, ...], expected: list[dict[str, str]]
) -> None:
    template = WhatsAppTemplate(name="order_update", language="en_US", body_parameters=parameters)
    message = template_message(template, outside(OutboundText(text="Hi")))
    assert message == {
        "type": "template",
        "template": {
            "name": "order_update",
            "language": {"code": "en_US"},
            "components": [{"type": "body", "parameters": expected}],
        },
    }


def test_a_template_without_parameters_has_no_components() -> None:
    template = WhatsAppTemplate(name="hello_world", language="en_US", body_parameters=())
    message = template_message(template, outside(OutboundText(text="ignored")))
    assert message["template"] == {"name": "hello_world", "language": {"code": "en_US"}}


def test_a_parameter_over_1024_characters_fails_for_good() -> None:
    template = WhatsAppTemplate(name="order_update", language="en_US")
    with pytest.raises(PermanentSendError, match="over the 1024"):
        template_message(template, outside(OutboundText(text="x" * 1025)))


@pytest.mark.parametrize(
    ("template", "field"),
    [
        ({"name": "Order Update", "language": "en_US"}, "name"),
        ({"name": "order_update", "language": "english"}, "language"),
        ({"name": "order_update"}, "language"),
        ({**ORDER_UPDATE, "color": "blue"}, "color"),
    ],
)
def test_a_bad_template_configuration_is_refused_at_load(
    template: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError, match=field):
        channel("https://graph.facebook.com/v21.0", template)


def test_the_form_is_offered_only_with_a_template() -> None:
    assert channel("https://graph.facebook.com/v21.0").outside_window_form(CUSTOMER) == "template"
    assert channel("https://graph.facebook.com/v21.0", None).outside_window_form(CUSTOMER) is None


async def test_the_template_goes_with_the_cloud_apis_payload(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    request = outside(OutboundText(text="Anna: Ваш заказ\nготов"))
    receipt = await channel(meta_graph.graph_api_url).send_outside_window(
        session, TARGET, request, reply_id="r1"
    )
    assert receipt.form == "template" and receipt.template == "order_update (en_US)"
    assert receipt.channel_message_ids == ("wamid.STANDIN00000001",)
    [call] = meta_graph.calls
    assert (call.node, call.token) == (PHONE_NUMBER_ID, WA_TOKEN)
    assert call.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": CUSTOMER,
        "type": "template",
        "template": {
            "name": "order_update",
            "language": {"code": "en_US"},
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": "Anna: Ваш заказ готов"}]}
            ],
        },
    }


@pytest.mark.parametrize(
    ("template", "meaning"),
    [
        ({"name": "not_approved", "language": "en_US"}, "no such approved template"),
        ({"name": "order_update", "language": "de"}, "no such approved template"),
        ({**ORDER_UPDATE, "body_parameters": ["{text}", "extra"]}, "number of parameters"),
    ],
)
async def test_metas_template_refusals_fail_for_good_with_their_meaning(
    meta_graph: MetaGraphStandIn,
    session: aiohttp.ClientSession,
    template: dict[str, Any],
    meaning: str,
) -> None:
    with pytest.raises(PermanentSendError, match=meaning):
        await channel(meta_graph.graph_api_url, template).send_outside_window(
            session, TARGET, outside(OutboundText(text="hi")), reply_id="r1"
        )


async def test_without_a_template_any_more_it_fails_for_good(
    meta_graph: MetaGraphStandIn, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(PermanentSendError, match="no outside_window_template"):
        await channel(meta_graph.graph_api_url, None).send_outside_window(
            session, TARGET, outside(OutboundText(text="hi")), reply_id="r1"
        )
    assert meta_graph.calls == []
