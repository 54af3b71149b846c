"""Merging contacts: the survivor takes everything, the merged one points at it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.crm.identities import Identity
from engine.crm.merging import SameContactError, merged
from engine.crm.records import Contact, Lead
from engine.errors import ConflictError

NOW = 1_800_000_000.0


def contact(contact_id: str, *values: str, **fields: object) -> Contact:
    identities = tuple(
        sorted(
            (Identity(kind="phone", value=value) for value in values),
            key=lambda identity: identity.sort_key,
        )
    )
    base: dict[str, object] = {
        "id": contact_id,
        "name": None,
        "identities": identities,
        "responsible_id": None,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return Contact.model_validate({**base, **fields})


def lead(lead_id: str, contact_id: str, at: float) -> Lead:
    return Lead(
        id=lead_id,
        contact_id=contact_id,
        line_id="support",
        status="new",
        created_at=at,
        updated_at=at,
    )


def test_the_survivor_takes_identities_leads_and_what_it_lacks() -> None:
    survivor = contact("cnt_a", "+1", leads=(lead("lead_2", "cnt_a", NOW + 2),))
    other = contact(
        "cnt_b",
        "+2",
        name="Ann",
        responsible_id="chen",
        leads=(lead("lead_1", "cnt_b", NOW + 1),),
        possible_duplicates=("cnt_a", "cnt_c"),
    )
    joined, gone = merged(survivor, other, NOW + 10)
    assert [i.value for i in joined.identities] == ["+1", "+2"]
    assert (joined.name, joined.responsible_id, joined.updated_at) == ("Ann", "chen", NOW + 10)
    assert [(x.id, x.contact_id) for x in joined.leads] == [
        ("lead_1", "cnt_a"),
        ("lead_2", "cnt_a"),
    ]
    assert joined.possible_duplicates == ("cnt_c",)
    assert (gone.merged_into, gone.identities, gone.leads) == ("cnt_a", (), ())


def test_the_survivor_keeps_its_own_responsible_and_name() -> None:
    joined, _ = merged(
        contact("cnt_a", name="Anna", responsible_id="boris"),
        contact("cnt_b", name="Ann", responsible_id="chen"),
        NOW,
    )
    assert (joined.name, joined.responsible_id) == ("Anna", "boris")


def test_a_contact_is_not_merged_with_itself_or_from_the_past() -> None:
    with pytest.raises(SameContactError, match="'cnt_a' is already one contact with itself"):
        merged(contact("cnt_a"), contact("cnt_a"), NOW)
    with pytest.raises(ConflictError, match="'cnt_b' was merged into 'cnt_c'"):
        merged(contact("cnt_a"), contact("cnt_b", merged_into="cnt_c"), NOW)


PHONES = st.frozensets(st.sampled_from([f"+{n}" for n in range(1, 9)]), max_size=4)


@given(PHONES, PHONES, PHONES)
def test_merging_is_associative_on_identities(
    a: frozenset[str], b: frozenset[str], c: frozenset[str]
) -> None:
    x, y, z = contact("cnt_x", *a), contact("cnt_y", *b), contact("cnt_z", *c)
    left, _ = merged(merged(x, y, NOW)[0], z, NOW)
    y_and_z, _ = merged(y, z, NOW)
    right, _ = merged(x, y_and_z, NOW)
    assert left.identities == right.identities
    assert {i.value for i in left.identities} == a | b | c
