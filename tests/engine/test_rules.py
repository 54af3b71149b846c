"""Routing rules: one YAML file per open line, validated whole, errors that point.

Every kind of bad file has its test, pinning the message a line's manager reads: file, line,
field path and what was expected (``docs/routing.md`` is the reference of the fields).
"""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ConfigError
from engine.routing.rules import (
    LineRules,
    RuleSet,
    UnavailableReason,
    load_rules,
    load_rules_file,
)

SHIPPED_RULES = Path(__file__).resolve().parents[2] / "routing_rules"

BASE = "portal: p1\nline: support\nqueue:\n  members:\n    - operator: anna\n"
"""A valid file of five lines; tests append to it, so line 6 is the first added line."""

FULL = """\
portal: p1
line: support
priority: 7
groups:
  seniors: [boris, chen]
queue:
  members:
    - operator: anna
    - group: seniors
  distribution: strictly
  require_accept: false
  order: newest_first
capacity:
  max_dialogs_per_operator: 3
  max_dialogs_across_lines: 4
  counted_states: [offered, assigned]
timers:
  accept_timeout_s: 45
  accept_timeout_text: "Next operator, please wait."
  no_answer_timeout_s: 300
  no_answer_text: "Another operator will answer."
  no_operator_timeout_s: 120
  no_operator_text: "Everyone is busy."
hours:
  timezone: Europe/Moscow
  weekly:
    mon: ["09:00-13:00", "14:00-18:00"]
    fri: ["22:00-02:00"]
  holidays: [2026-07-17]
  country_holidays: ru
  working_days:
    2026-11-28: ["10:00-16:00"]
outside_hours:
  text: "We open {opens_at}."
  action: transfer
  transfer_to_line: night
require_work_day: true
unavailable:
  offline: {action: return, grace_s: 60, customer_text: "Reconnecting."}
  away: {action: close}
crm:
  chain: [last_operator, queue]
  wait_for_responsible_s: 30
  lead: new_customer
  default_region: ru
  identities_from_text: true
queue_position:
  on_join: true
  on_move: true
  text: "Number {position}, about {wait_min} min."
  average_handle_s: 240
operators:
  chen:
    hours:
      timezone: Europe/Moscow
      weekly:
        mon: ["12:00-21:00"]
persona:
  mode: line_name
  name: Acme Support
reopen_within_s: 900
"""

NIGHT = "portal: p1\nline: night\nqueue:\n  members:\n    - operator: chen\n"
MOSCOW = ZoneInfo("Europe/Moscow")


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def load_one(directory: Path, text: str, name: str = "support.yaml") -> RuleSet:
    """Load a folder holding this one file."""
    write(directory, name, text)
    return load_rules(directory, version=1)


def moscow_s(wall: str) -> float:
    return datetime.fromisoformat(wall).replace(tzinfo=MOSCOW).timestamp()


def line(text: str) -> LineRules:
    """Rules parsed from a YAML text, as a file would give them."""
    return LineRules.model_validate(yaml.safe_load(text))


# -- valid files ------------------------------------------------------------------------------


def test_a_file_with_every_section_loads(tmp_path: Path) -> None:
    write(tmp_path, "night.yaml", NIGHT)
    rules = load_one(tmp_path, FULL).for_line("p1", "support")
    assert rules is not None
    assert rules.priority == 7
    assert rules.queue_order == ("anna", "boris", "chen")
    assert (rules.queue.distribution, rules.queue.require_accept) == ("strictly", False)
    assert rules.queue.order == "newest_first"
    assert rules.capacity.counted_states == ("offered", "assigned")
    assert rules.timers.accept_timeout_s == 45.0
    assert rules.hours.country_holidays == "RU"  # written in lower case
    assert rules.hours.holidays == (date(2026, 7, 17),)
    assert rules.outside_hours.transfer_to_line == "night"
    assert rules.unavailable_rule("away").action == "close"
    assert rules.crm.chain == ("last_operator", "queue")
    assert (rules.crm.lead, rules.crm.default_region) == ("new_customer", "RU")
    assert rules.crm.identities_from_text is True
    assert rules.queue_position.average_handle_s == 240.0
    assert set(rules.operator_schedules) == {"chen"}
    assert (rules.persona.mode, rules.persona.name) == ("line_name", "Acme Support")
    assert rules.reopen_within_s == 900.0


def test_the_hours_of_a_file_compile_into_its_schedule(tmp_path: Path) -> None:
    write(tmp_path, "night.yaml", NIGHT)
    rules = load_one(tmp_path, FULL).for_line("p1", "support")
    assert rules is not None
    schedule = rules.schedule
    assert schedule.is_open(moscow_s("2026-03-02T10:00"))  # Monday morning shift
    assert not schedule.is_open(moscow_s("2026-03-02T13:30"))  # lunch between the shifts
    assert schedule.is_open(moscow_s("2026-03-07T01:30"))  # Friday's shift past midnight
    assert not schedule.is_open(moscow_s("2026-03-09T10:00"))  # RU holiday, observed Monday
    assert schedule.is_open(moscow_s("2026-11-28T11:00"))  # the exceptional Saturday
    chen = rules.operator_schedules["chen"]
    assert not chen.is_open(moscow_s("2026-03-02T10:00"))
    assert chen.is_open(moscow_s("2026-03-02T12:00"))


def test_a_minimal_file_gets_the_documented_defaults(tmp_path: Path) -> None:
    rules = load_one(tmp_path, BASE).for_line("p1", "support")
    assert rules is not None
    assert rules.priority == 0
    assert (rules.queue.distribution, rules.queue.require_accept) == ("evenly", True)
    assert rules.queue.order == "oldest_first"
    assert rules.capacity.max_dialogs_per_operator == 5
    assert rules.capacity.max_dialogs_across_lines is None
    assert rules.capacity.counted_states == ("offered", "assigned", "answered")
    assert rules.timers.accept_timeout_s == 60.0
    assert rules.timers.no_answer_timeout_s is None
    assert rules.timers.no_operator_timeout_s is None
    assert rules.schedule.is_open(moscow_s("2026-01-01T03:00"))  # always open, even holidays
    assert (rules.outside_hours.action, rules.outside_hours.text) == ("wait", None)
    assert rules.require_work_day is False
    assert rules.crm.chain == ("responsible", "last_operator", "queue")
    assert rules.crm.wait_for_responsible_s == 0.0
    assert (rules.crm.lead, rules.crm.default_region, rules.crm.identities_from_text) == (
        "none",
        None,
        False,
    )
    assert (rules.queue_position.on_join, rules.queue_position.on_move) == (False, False)
    assert rules.operators == {}
    assert (rules.persona.mode, rules.persona.name) == ("profile", None)
    assert rules.reopen_within_s is None


def test_the_shipped_rules_folder_loads() -> None:
    rules = load_rules(SHIPPED_RULES, version=1)
    support = rules.for_line("demo", "support")
    assert support is not None
    assert set(support.queue_order) == {"anna", "boris", "chen"}
    assert support.hours.timezone == "Europe/Moscow"
    assert support.hours.country_holidays == "RU"
    assert support.hours.holidays and support.hours.working_days
    assert support.groups and support.timers.no_operator_text
    target = support.outside_hours.transfer_to_line
    assert target is not None and rules.for_line("demo", target) is not None
    assert set(support.operator_schedules) == {"anna", "chen"}
    assert support.queue_position.on_join and support.require_work_day
    assert support.persona.mode == "profile" and support.reopen_within_s == 900.0
    texts = support.texts
    assert texts is not None and texts.bot is not None and support.messages.consent is not None
    assert support.languages is not None and support.languages.all == ("ru", "en")


def test_rules_are_found_per_portal_and_line(tmp_path: Path) -> None:
    write(tmp_path, "support.yaml", BASE)
    write(tmp_path, "sales.yaml", BASE.replace("line: support", "line: sales"))
    write(tmp_path, "p2.yaml", BASE.replace("portal: p1", "portal: p2"))
    write(tmp_path, "notes.txt", "not rules: only *.yaml files are read")
    rules = load_rules(tmp_path, version=3)
    assert rules.version == 3
    assert sorted(rules.lines) == [("p1", "sales"), ("p1", "support"), ("p2", "support")]
    assert rules.for_line("p1", "nope") is None
    assert sorted(rules.for_portal("p1").lines) == ["sales", "support"]
    assert [name for name, _ in rules.fingerprint] == ["p2.yaml", "sales.yaml", "support.yaml"]


def test_a_missing_folder_is_no_rules(tmp_path: Path) -> None:
    assert load_rules(tmp_path / "absent", version=1).lines == {}


def test_a_transfer_to_a_routed_line_loads(tmp_path: Path) -> None:
    write(tmp_path, "night.yaml", NIGHT)
    text = BASE + "outside_hours:\n  action: transfer\n  transfer_to_line: night\n"
    rules = load_one(tmp_path, text).for_line("p1", "support")
    assert rules is not None and rules.outside_hours.transfer_to_line == "night"


# -- files that are not a mapping of rules ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line_no"),
    [
        ("portal: p1\nline: support: x\nqueue:\n", 2),
        (BASE + "   distribution: evenly\n", 6),
    ],
    ids=["mapping-in-a-value", "bad-indentation"],
)
def test_text_that_is_not_yaml_names_the_line(tmp_path: Path, text: str, line_no: int) -> None:
    with pytest.raises(ConfigError, match=rf"support\.yaml:{line_no}: invalid YAML: "):
        load_one(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("- portal: p1\n- line: support\n", r"support\.yaml:1"),
        ("just a sentence\n", r"support\.yaml:1"),
        ("", r"support\.yaml"),
    ],
    ids=["list", "scalar", "empty"],
)
def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(
        ConfigError,
        match=rf"{where}: \(top level\): Input should be a valid dictionary or instance of "
        r"LineRules",
    ):
        load_one(tmp_path, text)


# -- fields: unknown, missing, wrong type, out of range ----------------------------------------


def test_an_unknown_top_level_field_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"support\.yaml:6: strategy: Extra inputs are not permitted"
    ):
        load_one(tmp_path, BASE + "strategy: round_robin\n")


def test_an_unknown_nested_field_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"support\.yaml:6: queue\.weights: Extra inputs are not permitted"
    ):
        load_one(tmp_path, BASE + "  weights: 3\n")


def test_an_unknown_field_deep_in_operator_hours_is_refused(tmp_path: Path) -> None:
    text = BASE + "operators:\n  anna:\n    hours:\n      weekdays: {mon: ['09:00-18:00']}\n"
    with pytest.raises(
        ConfigError,
        match=r"support\.yaml:9: operators\.anna\.hours\.weekdays: Extra inputs are not permitted",
    ):
        load_one(tmp_path, text)


def test_a_missing_queue_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"support\.yaml:1: queue: Field required"):
        load_one(tmp_path, "portal: p1\nline: support\n")


def test_missing_queue_members_are_refused(tmp_path: Path) -> None:
    text = "portal: p1\nline: support\nqueue:\n  distribution: evenly\n"
    with pytest.raises(ConfigError, match=r"support\.yaml:3: queue\.members: Field required"):
        load_one(tmp_path, text)


def test_an_empty_queue_is_refused(tmp_path: Path) -> None:
    text = "portal: p1\nline: support\nqueue:\n  members: []\n"
    with pytest.raises(
        ConfigError, match=r"support\.yaml:4: queue\.members: Tuple should have at least 1 item"
    ):
        load_one(tmp_path, text)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "capacity:\n  max_dialogs_per_operator: many\n",
            r"support\.yaml:7: capacity\.max_dialogs_per_operator: Input should be a valid "
            r"integer",
        ),
        (
            "require_work_day: maybe\n",
            r"support\.yaml:6: require_work_day: Input should be a valid boolean",
        ),
        (
            "groups: [anna, boris]\n",
            r"support\.yaml:6: groups: Input should be a valid dictionary",
        ),
    ],
    ids=["text-for-integer", "text-for-boolean", "list-for-map"],
)
def test_a_value_of_the_wrong_type_is_refused(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_one(tmp_path, BASE + extra)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "timers:\n  accept_timeout_s: -5\n",
            r"support\.yaml:7: timers\.accept_timeout_s: Input should be greater than 0",
        ),
        (
            "capacity:\n  max_dialogs_per_operator: 0\n",
            r"support\.yaml:7: capacity\.max_dialogs_per_operator: "
            r"Input should be greater than or equal to 1",
        ),
        (
            "unavailable:\n  offline:\n    grace_s: -1\n",
            r"support\.yaml:8: unavailable\.offline\.grace_s: "
            r"Input should be greater than or equal to 0",
        ),
        (
            "priority: 5000\n",
            r"support\.yaml:6: priority: Input should be less than or equal to 1000",
        ),
    ],
    ids=["negative-timeout", "capacity-zero", "negative-grace", "priority-too-high"],
)
def test_a_number_out_of_range_is_refused(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_one(tmp_path, BASE + extra)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "  distribution: random\n",
            r"support\.yaml:6: queue\.distribution: "
            r"Input should be 'evenly', 'strictly' or 'all'",
        ),
        (
            "unavailable:\n  sleeping:\n    action: keep\n",
            r"support\.yaml:7: unavailable\.sleeping\.\[key\]: Input should be 'offline', "
            r"'away', 'end_of_day', 'vacation' or 'removed'",
        ),
        (
            "hours:\n  weekly:\n    monday: ['09:00-18:00']\n",
            r"support\.yaml:8: hours\.weekly\.monday\.\[key\]: Input should be 'mon', 'tue'",
        ),
    ],
    ids=["distribution", "unavailable-reason", "weekday"],
)
def test_a_value_outside_its_choices_is_refused(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_one(tmp_path, BASE + extra)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            BASE.replace("operator: anna", "operator: 'anna smith'"),
            r"support\.yaml:5: queue\.members\.0\.operator: String should match pattern",
        ),
        (
            BASE.replace("line: support", "line: '-support'"),
            r"support\.yaml:2: line: String should match pattern",
        ),
        (
            BASE + "outside_hours:\n  action: transfer\n  transfer_to_line: 'after hours'\n",
            r"support\.yaml:8: outside_hours\.transfer_to_line: String should match pattern",
        ),
    ],
    ids=["operator", "line", "transfer-target"],
)
def test_an_id_not_matching_the_pattern_is_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_one(tmp_path, text)


# -- checks across fields -----------------------------------------------------------------------


def test_a_queue_member_naming_an_unknown_group_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"support\.yaml:1: \(top level\): Value error, "
        r"queue member group 'night' is not in groups",
    ):
        load_one(tmp_path, BASE + "    - group: night\n")


@pytest.mark.parametrize(
    "member",
    ["    - operator: boris\n      group: seniors\n", "    - {}\n"],
    ids=["both", "neither"],
)
def test_a_queue_member_is_an_operator_or_a_group(tmp_path: Path, member: str) -> None:
    text = BASE + member + "groups:\n  seniors: [chen]\n"
    with pytest.raises(
        ConfigError,
        match=r"support\.yaml:6: queue\.members\.1: Value error, "
        r"give exactly one of `operator` or `group`",
    ):
        load_one(tmp_path, text)


def test_an_empty_group_is_refused(tmp_path: Path) -> None:
    text = BASE + "    - group: night\ngroups:\n  night: []\n"
    with pytest.raises(
        ConfigError,
        match=r"support\.yaml:1: \(top level\): Value error, group 'night' has no operators",
    ):
        load_one(tmp_path, text)


def test_a_no_operator_timeout_needs_its_text(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"support\.yaml:6: timers: Value error, "
        r"no_operator_timeout_s needs no_operator_text",
    ):
        load_one(tmp_path, BASE + "timers:\n  no_operator_timeout_s: 120\n")


@pytest.mark.parametrize(
    "outside",
    ["outside_hours:\n  action: transfer\n", "outside_hours:\n  transfer_to_line: night\n"],
    ids=["transfer-without-line", "line-without-transfer"],
)
def test_a_transfer_and_its_target_go_together(tmp_path: Path, outside: str) -> None:
    write(tmp_path, "night.yaml", NIGHT)
    with pytest.raises(
        ConfigError,
        match=r"support\.yaml:6: outside_hours: Value error, "
        r"action transfer needs transfer_to_line, and only it",
    ):
        load_one(tmp_path, BASE + outside)


@pytest.mark.parametrize(
    "persona",
    ["persona:\n  mode: line_name\n", "persona:\n  mode: hidden\n  name: Acme\n"],
    ids=["line-name-without-name", "name-without-line-name"],
)
def test_a_line_name_persona_and_its_name_go_together(tmp_path: Path, persona: str) -> None:
    with pytest.raises(
        ConfigError,
        match=r"support\.yaml:6: persona: Value error, mode line_name needs name, and only it",
    ):
        load_one(tmp_path, BASE + persona)


def test_a_line_name_persona_takes_an_https_avatar(tmp_path: Path) -> None:
    persona = "persona:\n  mode: line_name\n  name: Acme\n  avatar_url: https://cdn.example/a.png\n"
    rules = load_one(tmp_path, BASE + persona).for_line("p1", "support")
    assert rules is not None and rules.persona.avatar_url == "https://cdn.example/a.png"


@pytest.mark.parametrize(
    ("avatar", "line", "reason"),
    [
        ("http://cdn.example/a.png", 9, "an avatar URL must start with https://"),
        ("javascript:alert(1)", 9, "an avatar URL must start with https://"),
        ("https:///a.png", 9, "an avatar URL needs a host after https://"),
        ("https://u:p@cdn.example/a.png", 9, "must not carry a user name or password"),
        ('"https://cdn.example/a b.png"', 9, "must not contain spaces, control characters"),
        ("https://cdn.example/" + "a" * 1000, 9, "String should have at most 1000 characters"),
    ],
    ids=["http", "javascript", "no-host", "credentials", "space", "too-long"],
)
def test_a_bad_persona_avatar_points_at_its_file_line_and_field(
    tmp_path: Path, avatar: str, line: int, reason: str
) -> None:
    persona = f"persona:\n  mode: line_name\n  name: Acme\n  avatar_url: {avatar}\n"
    with pytest.raises(
        ConfigError, match=rf"support\.yaml:{line}: persona\.avatar_url: .*{reason}"
    ):
        load_one(tmp_path, BASE + persona)


def test_a_persona_avatar_belongs_to_line_name_only(tmp_path: Path) -> None:
    persona = "persona:\n  mode: profile\n  avatar_url: https://cdn.example/a.png\n"
    with pytest.raises(
        ConfigError,
        match=r"support\.yaml:6: persona: Value error, avatar_url is the line's picture for "
        r"mode line_name",
    ):
        load_one(tmp_path, BASE + persona)


def test_a_reopen_time_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"support\.yaml:6: reopen_within_s: Input should be greater than 0"
    ):
        load_one(tmp_path, BASE + "reopen_within_s: 0\n")


def test_a_transfer_to_the_line_itself_is_refused(tmp_path: Path) -> None:
    text = BASE + "outside_hours:\n  action: transfer\n  transfer_to_line: support\n"
    with pytest.raises(
        ConfigError,
        match=r"support\.yaml:1: \(top level\): Value error, "
        r"outside_hours\.transfer_to_line cannot be the line itself",
    ):
        load_one(tmp_path, text)


def test_a_transfer_to_a_line_no_file_routes_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "other-portal-night.yaml", NIGHT.replace("portal: p1", "portal: p2"))
    text = BASE + "outside_hours:\n  action: transfer\n  transfer_to_line: night\n"
    with pytest.raises(
        ConfigError,
        match=r"support\.yaml: outside_hours\.transfer_to_line: "
        r"portal 'p1' has no routed line 'night'",
    ):
        load_one(tmp_path, text)


@pytest.mark.parametrize(
    "chain", ["[queue, responsible]", "[responsible, responsible, queue]"], ids=["order", "twice"]
)
def test_a_crm_chain_lists_each_step_once_and_ends_with_queue(tmp_path: Path, chain: str) -> None:
    with pytest.raises(
        ConfigError,
        match=r"support\.yaml:6: crm: Value error, chain lists each step once and ends with queue",
    ):
        load_one(tmp_path, BASE + f"crm:\n  chain: {chain}\n")


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("lead: always", r"crm\.lead: Input should be 'none' or 'new_customer'"),
        (
            "default_region: XX",
            r"crm\.default_region: Value error, 'XX' is not a two-letter country code",
        ),
    ],
)
def test_crm_lead_and_region_are_checked(tmp_path: Path, field: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"support\.yaml:7: {message}"):
        load_one(tmp_path, BASE + f"crm:\n  {field}\n")


# -- working hours, in the line and per operator --------------------------------------------------

LINE_HOURS = "hours:\n  timezone: {zone}\n  weekly:\n    mon: ['{range}']\n"
OPERATOR_HOURS = (
    "operators:\n  anna:\n    hours:\n      timezone: {zone}\n      weekly:\n"
    "        mon: ['{range}']\n"
)
ZONE_EXPECTED = (
    r"Value error, 'Mars/Olympus' is not a known time zone; "
    r"expected an IANA name such as 'Europe/Moscow' or 'UTC'"
)
RANGE_EXPECTED = (
    r"Value error, weekly\.mon: '09:00-25:00' ends at 25:00; "
    r"expected 'HH:MM-HH:MM' with HH 00-23"
)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            LINE_HOURS.format(zone="Mars/Olympus", range="09:00-18:00"),
            rf"support\.yaml:7: hours\.timezone: {ZONE_EXPECTED}",
        ),
        (
            LINE_HOURS.format(zone="Europe/Moscow", range="09:00-25:00"),
            rf"support\.yaml:8: hours\.weekly: {RANGE_EXPECTED}",
        ),
        (
            OPERATOR_HOURS.format(zone="Mars/Olympus", range="09:00-18:00"),
            rf"support\.yaml:9: operators\.anna\.hours\.timezone: {ZONE_EXPECTED}",
        ),
        (
            OPERATOR_HOURS.format(zone="Europe/Moscow", range="09:00-25:00"),
            rf"support\.yaml:10: operators\.anna\.hours\.weekly: {RANGE_EXPECTED}",
        ),
    ],
    ids=["line-zone", "line-range", "operator-zone", "operator-range"],
)
def test_bad_hours_are_refused_where_they_are(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_one(tmp_path, BASE + extra)


def test_an_unknown_holiday_country_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"support\.yaml:6: hours: Value error, country_holidays: 'XX' is not a country",
    ):
        load_one(tmp_path, BASE + "hours:\n  country_holidays: XX\n")


def test_an_impossible_date_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"support\.yaml:7: invalid YAML: '2026-02-30' is not a"):
        load_one(tmp_path, BASE + "hours:\n  holidays: [2026-02-30]\n")


# -- the folder ---------------------------------------------------------------------------------


def test_two_files_for_the_same_line_are_refused(tmp_path: Path) -> None:
    first = write(tmp_path, "a-support.yaml", BASE)
    write(tmp_path, "b-support.yaml", BASE.replace("anna", "boris"))
    with pytest.raises(
        ConfigError,
        match=rf"b-support\.yaml: line 'support' of portal 'p1' is already routed by {first}",
    ):
        load_rules(tmp_path, version=1)


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    (tmp_path / "support.yaml").write_bytes(BASE.encode() + b"# caf\xe9\n")
    with pytest.raises(
        ConfigError, match=r"support\.yaml: cannot read rules: 'utf-8' codec can't decode"
    ):
        load_rules(tmp_path, version=1)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_a_file_without_read_permission_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "support.yaml", BASE)
    path.chmod(0)
    try:
        with pytest.raises(ConfigError, match=r"Permission denied: '.*support\.yaml'"):
            load_rules(tmp_path, version=1)
    finally:
        path.chmod(0o600)


def test_the_errors_of_every_bad_file_are_reported_together(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "portal: p1\nline: a\nqueue: {members: [{operator: anna}]\n")
    write(tmp_path, "b.yaml", BASE.replace("support", "b") + "  distribution: random\n")
    write(tmp_path, "c.yaml", "portal: p1\nline: c\n")
    transfer = "outside_hours:\n  action: transfer\n  transfer_to_line: night\n"
    write(tmp_path, "d.yaml", BASE.replace("support", "d") + transfer)
    (tmp_path / "e.yaml").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError) as caught:
        load_rules(tmp_path, version=1)
    lines = str(caught.value).splitlines()
    assert len(lines) == 5, lines
    assert "a.yaml:4: invalid YAML" in lines[0]
    assert "b.yaml:6: queue.distribution: Input should be" in lines[1]
    assert "c.yaml:1: queue: Field required" in lines[2]
    assert "e.yaml: cannot read rules" in lines[3]
    assert "d.yaml: outside_hours.transfer_to_line: portal 'p1' has no routed line" in lines[4]


def test_load_rules_file_reads_one_file(tmp_path: Path) -> None:
    rules = load_rules_file(write(tmp_path, "support.yaml", BASE))
    assert (rules.portal, rules.line, rules.queue_order) == ("p1", "support", ("anna",))


# -- the model's helpers ------------------------------------------------------------------------


def test_queue_order_expands_groups_in_place_keeping_order_and_each_operator_once() -> None:
    rules = line(
        """
        portal: p1
        line: support
        groups:
          seniors: [chen, boris]
          evening: [dmitry, chen, anna]
        queue:
          members:
            - operator: anna
            - group: seniors
            - operator: boris
            - group: evening
            - operator: emma
        """
    )
    assert rules.queue_order == ("anna", "chen", "boris", "dmitry", "emma")


operator_ids = st.sampled_from(["anna", "boris", "chen", "dmitry", "emma"])


@settings(derandomize=True, max_examples=60, deadline=None)
@given(
    groups=st.dictionaries(
        st.sampled_from(["g1", "g2", "g3"]),
        st.lists(operator_ids, min_size=1, max_size=4),
        max_size=3,
    ),
    picks=st.lists(
        st.tuples(st.booleans(), operator_ids, st.integers(0, 2)), min_size=1, max_size=8
    ),
)
def test_queue_order_is_the_first_appearance_of_each_operator(
    groups: dict[str, list[str]], picks: list[tuple[bool, str, int]]
) -> None:
    names = sorted(groups)
    members = [
        {"group": names[index % len(names)]} if as_group and names else {"operator": operator}
        for as_group, operator, index in picks
    ]
    rules = LineRules.model_validate(
        {"portal": "p1", "line": "support", "groups": groups, "queue": {"members": members}}
    )
    expanded = [
        operator
        for member in members
        for operator in ([member["operator"]] if "operator" in member else groups[member["group"]])
    ]
    assert rules.queue_order == tuple(dict.fromkeys(expanded))


def test_unavailable_rules_default_per_reason_and_a_written_reason_replaces_its_default() -> None:
    rules = line(BASE + "unavailable:\n  offline:\n    customer_text: 'Reconnecting.'\n")
    offline = rules.unavailable_rule("offline")
    assert (offline.action, offline.grace_s, offline.customer_text) == (
        "return",
        0.0,
        "Reconnecting.",
    )
    default_offline = line(BASE).unavailable_rule("offline")
    assert (default_offline.action, default_offline.grace_s) == ("return", 300.0)
    defaults = line(BASE)
    others: list[tuple[UnavailableReason, str]] = [
        ("away", "keep"),
        ("end_of_day", "return"),
        ("vacation", "return"),
        ("removed", "return"),
    ]
    for reason, action in others:
        for rules_of in (rules, defaults):
            rule = rules_of.unavailable_rule(reason)
            assert (rule.action, rule.grace_s, rule.customer_text) == (action, 0.0, None)


def test_lines_of_operator_puts_higher_priority_lines_first(tmp_path: Path) -> None:
    def file(name: str, priority: int, operators: str) -> str:
        members = "".join(f"    - operator: {op}\n" for op in operators.split())
        return f"portal: p1\nline: {name}\npriority: {priority}\nqueue:\n  members:\n{members}"

    write(tmp_path, "a.yaml", file("alpha", 0, "anna chen"))
    write(tmp_path, "b.yaml", file("beta", 10, "chen"))
    write(tmp_path, "c.yaml", file("gamma", -5, "chen anna"))
    write(tmp_path, "d.yaml", file("delta", 10, "chen boris"))
    write(tmp_path, "other.yaml", file("beta", 99, "chen").replace("portal: p1", "portal: p2"))
    portal = load_rules(tmp_path, version=1).for_portal("p1")
    assert portal.lines_of_operator == {
        "chen": ("beta", "delta", "alpha", "gamma"),  # ties by line id
        "anna": ("alpha", "gamma"),
        "boris": ("delta",),
    }


# -- the line's own messages and its bot (docs/line-messages.md, docs/bot.md) ----------------

SECTIONS = """languages:
  default: ru
  supported: [ru, en]
messages:
  greeting:
    text: {ru: "Здравствуйте!", en: "Hello!"}
bot:
  fallback: {ru: "?", "*": "?"}
"""


def test_a_file_may_hold_the_lines_own_messages_and_its_bot(tmp_path: Path) -> None:
    write(tmp_path, "support.yaml", BASE + SECTIONS)
    rules = load_rules(tmp_path, version=1).for_line("p1", "support")
    assert rules is not None and rules.texts is not None
    assert rules.texts.bot is not None and rules.messages.greeting is not None
    plain = load_rules_file(write(tmp_path / "plain", "support.yaml", BASE))
    assert plain.texts is None  # a line without them routes as before


def test_a_bad_text_is_reported_at_its_file_line_and_field(tmp_path: Path) -> None:
    bad = SECTIONS.replace('en: "Hello!"', 'en: "Hello {custmer_name}!"')
    write(tmp_path, "support.yaml", BASE + bad)
    message = (
        r"support\.yaml:11: messages\.greeting\.text\.en: Value error, unknown placeholder "
        r"\{custmer_name\}"
    )
    with pytest.raises(ConfigError, match=message):
        load_rules(tmp_path, version=1)


def test_a_text_missing_a_language_is_reported_across_the_sections(tmp_path: Path) -> None:
    write(tmp_path, "support.yaml", BASE + SECTIONS.replace(', en: "Hello!"', ""))
    message = (
        r"support\.yaml:11: messages\.greeting\.text: has no text for \['en'\]: add them, "
        r'or a "\*" text for every other language'
    )
    with pytest.raises(ConfigError, match=message):
        load_rules(tmp_path, version=1)


def test_an_unknown_key_in_the_sections_is_still_refused(tmp_path: Path) -> None:
    write(tmp_path, "support.yaml", BASE + SECTIONS + "  greting: {text: hi}\n")
    with pytest.raises(ConfigError, match=r"support\.yaml:\d+: bot\.greting: Extra inputs"):
        load_rules(tmp_path, version=1)
