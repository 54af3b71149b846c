"""Identities normalize to one string each; what cannot be normalized is refused, saying why."""

from __future__ import annotations

import pytest

from engine.crm.identities import (
    Identity,
    InvalidIdentityError,
    connector_identity,
    email_identity,
    parse_identity,
    phone_identity,
)


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+7 (912) 345-67-89", None, "+79123456789"),
        ("8 912 345 67 89", "RU", "+79123456789"),
        ("89123456789", "RU", "+79123456789"),
        ("79123456789", None, "+79123456789"),  # Telegram's shared contact: no '+'
        ("79123456789", "RU", "+79123456789"),
        ("8 800 555-35-35", "RU", "+78005553535"),
        ("+4915112345678", None, "+4915112345678"),
        ("4915112345678", "RU", "+4915112345678"),  # not Russian: read as international
        ("0151 12345678", "DE", "+4915112345678"),
        ("(415) 555-2671", "US", "+14155552671"),
        ("+44 20 7946 0958", "RU", "+442079460958"),
        ("  +7 912 345 67 89 ", "DE", "+79123456789"),
    ],
)
def test_phones_become_e164(raw: str, region: str | None, e164: str) -> None:
    assert phone_identity(raw, region) == Identity(kind="phone", value=e164)


@pytest.mark.parametrize(
    ("raw", "region", "message"),
    [
        ("8 912 345 67 89", None, "has no country code and no default region is set"),
        ("12345", "RU", r"is not a valid number \(default region RU\)"),
        ("+7 000", None, "is not a valid number"),
        ("call me", "RU", "is not a phone number"),
        ("", "RU", "is empty"),
        ("+7" + "1" * 60, None, "longer than 50"),
    ],
)
def test_bad_phones_are_refused_with_the_reason(raw: str, region: str | None, message: str) -> None:
    with pytest.raises(InvalidIdentityError, match=message):
        phone_identity(raw, region)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("Ann.Lee@Example.COM", "Ann.Lee@example.com"),
        (" ann+crm@mail.example.org ", "ann+crm@mail.example.org"),
        ("ivan@Почта.рф", "ivan@xn--80a1acny.xn--p1ai"),
        ("o'brien@b\u00fccher.de", "o'brien@xn--bcher-kva.de"),
    ],
)
def test_emails_keep_the_name_and_lower_the_domain(raw: str, value: str) -> None:
    assert email_identity(raw) == Identity(kind="email", value=value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("ann.example.com", "needs a name, '@' and a domain"),
        ("@example.com", "needs a name, '@' and a domain"),
        ("ann@", "needs a name, '@' and a domain"),
        ("ann@localhost", "'localhost' is not a domain"),
        ("ann@exa_mple.com", "is not a domain"),
        ("ann@-example.com", "is not a domain"),
        ("ann@example..com", "is not a domain"),
        ("ann@10.0.0.1", "is not a domain"),
        ("a..b@example.com", "is not a valid name before '@'"),
        ('"ann lee"@example.com', "is not a valid name before '@'"),
        ("анна@example.com", "is not a valid name before '@'"),
        ("a@b@example.com", "is not a valid name before '@'"),
        ("x" * 65 + "@example.com", "is not a valid name before '@'"),
    ],
)
def test_bad_emails_are_refused_with_the_reason(raw: str, message: str) -> None:
    with pytest.raises(InvalidIdentityError, match=message):
        email_identity(raw)


def test_connector_identities_name_their_connector() -> None:
    assert connector_identity("tg", "42") == Identity(kind="connector", value="tg/42")
    with pytest.raises(InvalidIdentityError, match="is not a connector id"):
        connector_identity("a/b", "42")
    with pytest.raises(InvalidIdentityError, match="empty or too long"):
        connector_identity("tg", "")


def test_a_portal_writes_identities_as_the_engine_normalizes_them() -> None:
    assert parse_identity("phone", "8 912 345-67-89", "RU").value == "+79123456789"
    assert parse_identity("email", "A@B.CO", None).value == "A@b.co"
    assert parse_identity("connector", "vk/228970688", None).value == "vk/228970688"
    assert parse_identity("connector", "vk/id/with/slashes", None).value == "vk/id/with/slashes"
    with pytest.raises(InvalidIdentityError, match="is not '<connector>/<user>'"):
        parse_identity("connector", "vk", None)
    with pytest.raises(InvalidIdentityError, match="is not connector, phone or email"):
        parse_identity("fax", "1", None)
