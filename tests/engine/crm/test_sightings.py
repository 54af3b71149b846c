"""Which identities a message shows of its sender: its own, never someone else's card."""

from __future__ import annotations

from engine.crm.identities import Identity
from engine.crm.sightings import LinkSettings, sighting
from engine.models import ContactContent, Customer, TextContent

RU = LinkSettings(region="RU")


def phone(value: str) -> Identity:
    return Identity(kind="phone", value=value)


def test_a_text_shows_only_the_connector_identity_by_default() -> None:
    seen = sighting(
        "support", "vk", Customer(channel_user_id="7"), TextContent(text="+7 912 345 67 89"), RU
    )
    assert seen.identities == (Identity(kind="connector", value="vk/7"),)
    assert seen.key == "vk/7"


def test_a_shared_own_contact_gives_the_phone() -> None:
    own = ContactContent(phone="79123456789", first_name="Ann", channel_user_id="42")
    seen = sighting("support", "tg", Customer(channel_user_id="42", name="Ann"), own, RU)
    assert seen.others == (phone("+79123456789"),)
    assert seen.name == "Ann"


def test_someone_elses_contact_card_is_content_not_an_identity() -> None:
    card = ContactContent(phone="+79123456789", channel_user_id="99")
    seen = sighting("support", "tg", Customer(channel_user_id="42"), card, RU)
    assert seen.others == ()
    unknown = ContactContent(phone="+79123456789")
    assert sighting("support", "tg", Customer(channel_user_id="42"), unknown, RU).others == ()


def test_the_profile_phone_of_a_custom_connector_is_taken() -> None:
    customer = Customer(channel_user_id="c-1", phone="8 (912) 345-67-89")
    assert sighting("support", "shop", customer, None, RU).others == (phone("+79123456789"),)


def test_a_bad_number_is_passed_over_with_its_reason() -> None:
    customer = Customer(channel_user_id="c-1", phone="12")
    seen = sighting("support", "shop", customer, None, RU)
    assert seen.others == ()
    assert seen.refused == ("phone '12' is not a valid number (default region RU)",)


def test_numbers_and_addresses_in_a_text_when_the_line_says_so() -> None:
    settings = LinkSettings(region="RU", from_text=True)
    text = TextContent(
        text="Hi! My phone is 8 (912) 345-67-89, mail Ann.Lee@Example.com. Not 12345."
    )
    seen = sighting("support", "vk", Customer(channel_user_id="7"), text, settings)
    assert seen.others == (
        Identity(kind="email", value="Ann.Lee@example.com"),
        phone("+79123456789"),
    )


def test_without_a_region_only_numbers_written_with_plus_are_found_in_texts() -> None:
    settings = LinkSettings(from_text=True)
    text = TextContent(text="8 912 345 67 89 or +49 151 12345678")
    seen = sighting("support", "vk", Customer(channel_user_id="7"), text, settings)
    assert seen.others == (phone("+4915112345678"),)
