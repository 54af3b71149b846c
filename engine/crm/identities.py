"""How the CRM recognises a customer across channels: identities, each normalized to one
string so that the same person written two ways is one identity (``docs/crm.md``).

* ``connector``: a channel user id as one connector sees it, ``<connector_id>/<user id>``.
  User ids are only unique within a connector (a VK id means nothing to a Telegram bot).
* ``phone``: E.164, parsed by ``phonenumbers`` with a default region for numbers written
  without a country code (``8 912 ...`` in Russia).
* ``email``: the domain lower-cased and IDNA-encoded, the name before ``@`` kept as written
  (it is case-sensitive by the standard); both validated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import phonenumbers

from engine.errors import ValidationFailedError

IdentityKind = Literal["connector", "phone", "email"]

MAX_PHONE_CHARS = 50
MAX_EMAIL_CHARS = 254
MAX_CONNECTOR_VALUE_CHARS = 300

_DIGITS_ONLY = re.compile(r"^[\d\s().-]+$")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*$")
_DOMAIN_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class InvalidIdentityError(ValidationFailedError):
    """A phone number, e-mail address or region that cannot be normalized; says why."""

    reason = "invalid_identity"


@dataclass(frozen=True, slots=True)
class Identity:
    """One normalized identity; equal values are the same person (unique per portal).

    A plain dataclass, not a model: linking hashes identities for every message, and a
    pydantic model's hash cost most of its time. Contacts (models) hold them all the same.
    """

    kind: IdentityKind
    """connector, phone or email."""
    value: str
    """The normalized value: '<connector>/<user>', E.164, an e-mail address."""

    @property
    def sort_key(self) -> tuple[str, str]:
        return (self.kind, self.value)


def connector_identity(connector_id: str, channel_user_id: str) -> Identity:
    """The customer as one connector knows them (``Customer.channel_user_id``)."""
    if not connector_id or "/" in connector_id:
        raise InvalidIdentityError(f"connector id {connector_id!r} is not a connector id")
    if not channel_user_id or len(channel_user_id) > MAX_CONNECTOR_VALUE_CHARS - 65:
        raise InvalidIdentityError(f"channel user id {channel_user_id!r} is empty or too long")
    return Identity(kind="connector", value=f"{connector_id}/{channel_user_id}")


def phone_identity(raw: str, region: str | None) -> Identity:
    """``raw`` in E.164. Without a country code it is read in ``region``; digits alone that
    are no valid number there are read as international without the ``+`` (Telegram sends a
    shared contact's number so: ``79123456789``)."""
    text = raw.strip()
    if not text or len(text) > MAX_PHONE_CHARS:
        raise InvalidIdentityError(f"phone {raw!r} is empty or longer than {MAX_PHONE_CHARS}")
    number = _parsed(text, region)
    if (number is None or not phonenumbers.is_valid_number(number)) and (_DIGITS_ONLY.match(text)):
        number = _parsed("+" + re.sub(r"\D", "", text), None) or number
    if number is None:
        if region is None and not text.startswith("+"):
            raise InvalidIdentityError(
                f"phone {raw!r} has no country code and no default region is set"
            )
        raise InvalidIdentityError(f"phone {raw!r} is not a phone number")
    if not phonenumbers.is_valid_number(number):
        where = f" (default region {region})" if region else ""
        raise InvalidIdentityError(f"phone {raw!r} is not a valid number{where}")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Identity(kind="phone", value=e164)


def _parsed(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None


def email_identity(raw: str) -> Identity:
    """``raw`` validated, its domain lower-cased and IDNA-encoded (``Bücher.de`` is
    ``xn--bcher-kva.de``). Quoted names and non-ASCII names are refused."""
    text = raw.strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise InvalidIdentityError(f"e-mail {raw!r} needs a name, '@' and a domain")
    if len(local) > 64 or not _LOCAL_PART.match(local):
        raise InvalidIdentityError(
            f"e-mail {raw!r}: {local!r} is not a valid name before '@' (unquoted ASCII)"
        )
    ascii_domain = _ascii_domain(domain, raw)
    value = f"{local}@{ascii_domain}"
    if len(value) > MAX_EMAIL_CHARS:
        raise InvalidIdentityError(f"e-mail {raw!r} is longer than {MAX_EMAIL_CHARS}")
    return Identity(kind="email", value=value)


def _ascii_domain(domain: str, raw: str) -> str:
    try:
        ascii_domain = domain.lower().encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidIdentityError(f"e-mail {raw!r}: {domain!r} is not a domain") from None
    labels = ascii_domain.split(".")
    if (
        len(labels) < 2
        or len(ascii_domain) > 253
        or not all(_DOMAIN_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise InvalidIdentityError(f"e-mail {raw!r}: {domain!r} is not a domain")
    return ascii_domain


def parse_identity(kind: str, value: str, region: str | None) -> Identity:
    """An identity as a portal writes it (API): normalized like the engine's own."""
    if kind == "phone":
        return phone_identity(value, region)
    if kind == "email":
        return email_identity(value)
    if kind == "connector":
        connector_id, slash, user_id = value.partition("/")
        if not slash:
            raise InvalidIdentityError(f"connector identity {value!r} is not '<connector>/<user>'")
        return connector_identity(connector_id, user_id)
    raise InvalidIdentityError(f"identity kind {kind!r} is not connector, phone or email")
