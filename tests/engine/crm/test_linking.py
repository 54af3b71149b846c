"""Linking messages to contacts: the rules on examples, and properties over many orders."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from engine.crm.identities import Identity
from engine.crm.linking import Linker, Owner, decide
from engine.crm.sightings import Sighting

NOW = 1_800_000_000.0


def ids() -> Callable[[str], str]:
    counter = itertools.count(1)
    return lambda prefix: f"{prefix}_{next(counter):04d}"


def seen(user: str, *others: str, connector: str = "tg", line: str = "support") -> Sighting:
    """A sighting; ``others`` are phones (``+...``) or e-mails (``...@...``)."""
    identities = tuple(
        Identity(kind="email" if "@" in value else "phone", value=value) for value in others
    )
    return Sighting(
        f"{connector}/{user}",
        line,
        Identity(kind="connector", value=f"{connector}/{user}"),
        identities,
        f"name of {user}",
    )


def phone(value: str) -> Identity:
    return Identity(kind="phone", value=value)


def test_a_stranger_gets_a_new_contact_and_a_lead_when_the_line_asks() -> None:
    linker = Linker({}, NOW, ids())
    contact = linker.link(seen("42", "+79123456789"), lead=True)
    changes = linker.changes
    assert [c.contact_id for c in changes.contacts] == [contact]
    assert changes.contacts[0].name == "name of 42"
    assert [(i.kind, c) for i, c in changes.identities] == [
        ("connector", contact),
        ("phone", contact),
    ]
    assert [(lead.contact_id, lead.line_id) for lead in changes.leads] == [(contact, "support")]
    assert linker.link(seen("42"), lead=True) == contact  # known now: no second lead
    assert len(changes.leads) == 1


def test_a_matching_phone_links_another_channel_to_the_same_contact() -> None:
    linker = Linker({}, NOW, ids())
    telegram = linker.link(seen("42", "+79123456789"), lead=False)
    vk = linker.link(seen("7", "+79123456789", connector="vk"), lead=True)
    assert vk == telegram
    assert linker.changes.leads == []  # not a new customer
    assert linker.changes.contact_of == {"tg/42": telegram, "vk/7": telegram}


def test_of_several_matching_contacts_the_oldest_is_chosen_and_the_others_recorded() -> None:
    owners = {
        phone("+1"): Owner("cnt_b", NOW - 10),
        Identity(kind="email", value="a@x.io"): Owner("cnt_a", NOW - 20),
        phone("+2"): Owner("cnt_c", NOW - 20),
    }
    decision = decide(seen("9", "+1", "a@x.io", "+2", "+3"), owners)
    assert decision.contact == Owner("cnt_a", NOW - 20)  # oldest, then the smaller id
    assert decision.duplicates == ("cnt_b", "cnt_c")
    assert decision.attach == (Identity(kind="connector", value="tg/9"), phone("+3"))


def test_the_contact_holding_the_conversation_keeps_it_whatever_else_matches() -> None:
    owners = {
        Identity(kind="connector", value="tg/9"): Owner("cnt_new", NOW),
        phone("+1"): Owner("cnt_old", NOW - 100),
    }
    decision = decide(seen("9", "+1"), owners)
    assert decision.contact == Owner("cnt_new", NOW)
    assert decision.duplicates == ("cnt_old",)
    assert decision.attach == ()


# -- properties ------------------------------------------------------------------------------

USERS = st.sampled_from([("tg", "1"), ("tg", "2"), ("vk", "1"), ("vk", "3"), ("shop", "x")])
EXTRAS = st.lists(st.sampled_from(["+71", "+72", "+73", "a@x.io", "b@x.io"]), max_size=3)
SIGHTINGS = st.lists(
    st.builds(lambda user, extra: seen(user[1], *extra, connector=user[0]), USERS, EXTRAS),
    min_size=1,
    max_size=12,
)


def link_all(sightings: list[Sighting]) -> tuple[Linker, list[str]]:
    linker = Linker({}, NOW, ids())
    return linker, [linker.link(s, lead=True) for s in sightings]


def partition(linker: Linker) -> set[frozenset[Identity]]:
    """The contacts as sets of identities: what linking decided, whatever the ids."""
    by_contact: defaultdict[str, set[Identity]] = defaultdict(set)
    for identity, contact_id in linker.changes.identities:
        by_contact[contact_id].add(identity)
    return {frozenset(identities) for identities in by_contact.values()}


@given(SIGHTINGS, st.randoms(use_true_random=False))
def test_messages_that_share_an_identity_make_one_contact_in_any_order(
    sightings: list[Sighting], rng: random.Random
) -> None:
    shared = [replace(s, others=(*s.others, phone("+70"))) for s in sightings]
    shuffled = rng.sample(shared, len(shared))
    first, _ = link_all(shared)
    second, _ = link_all(shuffled)
    everything = frozenset(i for s in shared for i in s.identities)
    assert partition(first) == partition(second) == {everything}


@given(SIGHTINGS)
def test_a_conversation_always_links_to_one_contact(sightings: list[Sighting]) -> None:
    _, contacts = link_all(sightings)
    by_key: defaultdict[str, set[str]] = defaultdict(set)
    for sighting, contact in zip(sightings, contacts, strict=True):
        by_key[sighting.key].add(contact)
    assert all(len(found) == 1 for found in by_key.values())


@given(SIGHTINGS)
def test_each_identity_has_one_contact_and_a_contact_only_joins_what_is_connected(
    sightings: list[Sighting],
) -> None:
    linker, contacts = link_all(sightings)
    owned = [identity for identity, _ in linker.changes.identities]
    assert len(owned) == len(set(owned))
    assert set(owned) == {i for s in sightings for i in s.identities}
    # Every sighting of a contact reaches its first one through shared identities.
    for contact in set(contacts):
        members = [s for s, c in zip(sightings, contacts, strict=True) if c == contact]
        reached = set(members[0].identities)
        grown = True
        while grown:
            grown = False
            for member in members:
                if reached & set(member.identities) and not set(member.identities) <= reached:
                    reached |= set(member.identities)
                    grown = True
        assert all(reached & set(m.identities) for m in members)


@given(SIGHTINGS)
def test_a_batch_links_exactly_as_the_messages_one_at_a_time(sightings: list[Sighting]) -> None:
    batch, in_batch = link_all(sightings)
    owners: dict[Identity, Owner] = {}
    make = ids()
    one_by_one: list[str] = []
    for sighting in sightings:
        linker = Linker(owners, NOW, make)
        one_by_one.append(linker.link(sighting, lead=True))
        owners.update(
            (identity, Owner(contact, NOW)) for identity, contact in linker.changes.identities
        )
    assert one_by_one == in_batch
    new_contacts = len(batch.changes.contacts)
    assert len(set(in_batch)) == new_contacts == len(batch.changes.leads)
