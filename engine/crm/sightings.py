"""Which identities an inbound message shows of its sender (``docs/crm.md``, "Linking").

Always the connector identity. A phone when the channel gives the customer's own number
(the custom connector's ``customer.phone``) or the customer shares their own contact
(Telegram's "share my contact": the contact's user id is the sender's). A contact card of
someone else is content, not an identity. Phone numbers and e-mail addresses written in a
text only when the line's rules say ``crm.identities_from_text``: a customer may write a
friend's number, so it is the line's choice.

A number or address that does not normalize is passed over with its reason: a message is
never refused for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import phonenumbers

from engine.crm.identities import (
    Identity,
    InvalidIdentityError,
    connector_identity,
    email_identity,
    phone_identity,
)
from engine.models import ContactContent, Content, Customer, TextContent

MAX_FROM_TEXT = 5
"""Identities taken from one text at most: a pasted list is not one customer."""

_EMAIL_IN_TEXT = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[^\s@,;:<>()\[\]\"]+\.[^\s@,;:<>()\[\]\"]+"
)


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """What a line's rules say about linking (``crm`` section, docs/routing.md)."""

    region: str | None = None
    """Default region for numbers without a country code (the line's, else the portal's)."""
    lead: bool = False
    """Open a lead when a message creates a new contact (``crm.lead: new_customer``)."""
    from_text: bool = False
    """Take phone numbers and e-mail addresses written in texts (``identities_from_text``)."""


@dataclass(frozen=True, slots=True)
class Sighting:
    """The identities one message shows of its sender."""

    key: str
    """The conversation's customer, ``<connector_id>/<channel user id>`` (the router's key)."""
    line_id: str
    connector: Identity
    others: tuple[Identity, ...]
    name: str | None
    refused: tuple[str, ...] = ()
    """Why numbers or addresses it carried were not taken."""

    @property
    def identities(self) -> tuple[Identity, ...]:
        return (self.connector, *self.others)


def sighting(
    line_id: str,
    connector_id: str,
    customer: Customer,
    content: Content | None,
    settings: LinkSettings,
) -> Sighting:
    connector = connector_identity(connector_id, customer.channel_user_id)
    phones: list[str] = []
    if customer.phone:
        phones.append(customer.phone)
    if isinstance(content, ContactContent) and content.channel_user_id == customer.channel_user_id:
        phones.append(content.phone)
    found: dict[Identity, None] = {}
    refused: list[str] = []
    for phone in phones:
        _take(found, refused, partial(phone_identity, phone, settings.region))
    if settings.from_text and isinstance(content, TextContent):
        found.update(dict.fromkeys(phones_in_text(content.text, settings.region)))
        for address in _EMAIL_IN_TEXT.findall(content.text)[:MAX_FROM_TEXT]:
            _take(found, refused, partial(email_identity, address.rstrip(".")))
    if customer.email:
        _take(found, refused, partial(email_identity, customer.email))
    others = tuple(sorted(found, key=lambda i: i.sort_key))
    key = f"{connector_id}/{customer.channel_user_id}"
    return Sighting(key, line_id, connector, others, customer.name, tuple(refused))


def _take(found: dict[Identity, None], refused: list[str], make: Callable[[], Identity]) -> None:
    try:
        found[make()] = None
    except InvalidIdentityError as exc:
        refused.append(str(exc))


def phones_in_text(text: str, region: str | None) -> list[Identity]:
    """Valid numbers written in ``text``; without a region only those written with ``+``."""
    matcher = phonenumbers.PhoneNumberMatcher(
        text, region or "ZZ", leniency=phonenumbers.Leniency.VALID, max_tries=MAX_FROM_TEXT * 4
    )
    found: list[Identity] = []
    for match in matcher:
        e164 = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
        found.append(Identity(kind="phone", value=e164))
        if len(found) == MAX_FROM_TEXT:
            break
    return found
