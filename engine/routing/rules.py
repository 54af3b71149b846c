"""Routing rules: one YAML file per open line, validated whole, versioned as a snapshot.

A file names its portal and line and says who answers it and how: the queue and its
distribution, capacity, timers, working hours, what happens when an operator becomes
unavailable, CRM ownership, priority, what the customer is told about the queue, how
operators are named to customers and whether a returning customer reopens their dialog.
``docs/routing.md`` is the reference of every field. The same file may hold the line's own
messages and its bot (``languages``, ``messages``, ``bot``): their models and the checks
across them are ``engine.line_texts``' and ``engine.bot``'s (docs/line-messages.md,
docs/bot.md); a file without them routes exactly as before.

A bad file never replaces good rules: ``load_rules`` either returns a complete new
``RuleSet`` or raises ``ConfigError`` naming every bad file, line and field.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from engine.bot.config import BotConfig
from engine.config import ID_PATTERN, ConfigModel, Region
from engine.errors import ConfigError
from engine.line_texts.config import MessagesConfig
from engine.line_texts.languages import LanguagesConfig
from engine.line_texts.sections import LineSections, LineTexts, check_sections
from engine.models import AvatarUrl
from engine.routing.hours import HoursConfig, Schedule
from engine.yaml_marks import parse_yaml_model

Distribution = Literal["evenly", "strictly", "all"]
CountedState = Literal["offered", "assigned", "answered"]
UnavailableReason = Literal["offline", "away", "end_of_day", "vacation", "removed"]
UnavailableAction = Literal["return", "keep", "close"]
FallbackStep = Literal["responsible", "last_operator", "queue"]
PersonaMode = Literal["profile", "line_name", "hidden"]
OperatorIdItem = Annotated[str, Field(pattern=ID_PATTERN)]


class QueueMember(ConfigModel):
    """One entry of the queue: an operator, or a group named under ``groups``."""

    operator: str | None = Field(
        default=None, pattern=ID_PATTERN, description="An operator's id in the portal."
    )
    group: str | None = Field(
        default=None, pattern=ID_PATTERN, description="A group of operators named in `groups`."
    )

    @model_validator(mode="after")
    def _one_of(self) -> QueueMember:
        if (self.operator is None) == (self.group is None):
            raise ValueError("give exactly one of `operator` or `group`")
        return self


class QueueRules(ConfigModel):
    members: tuple[QueueMember, ...] = Field(
        min_length=1, description="Operators and groups in queue order (strictly uses it)."
    )
    distribution: Distribution = Field(
        default="evenly",
        description=(
            "evenly: the available operator whose last assignment is oldest; strictly: queue "
            "order, skipping operators already tried for the dialog, wrapping round; all: "
            "offered to every available operator at once, the first to accept takes it."
        ),
    )
    require_accept: bool = Field(
        default=True,
        description=(
            "true: a dialog is offered and becomes assigned when the operator accepts; "
            "false: evenly and strictly assign at once (all always offers)."
        ),
    )
    order: Literal["oldest_first", "newest_first"] = Field(
        default="oldest_first", description="Which waiting dialog gets the next free operator."
    )


class CapacityRules(ConfigModel):
    max_dialogs_per_operator: int = Field(
        default=5, ge=1, le=10_000, description="Simultaneous dialogs of this line per operator."
    )
    max_dialogs_across_lines: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="An operator with this many dialogs over all the portal's lines gets none.",
    )
    counted_states: tuple[CountedState, ...] = Field(
        default=("offered", "assigned", "answered"),
        min_length=1,
        description="Dialog states that count toward an operator's load.",
    )


class TimerRules(ConfigModel):
    accept_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=86_400,
        description="An offer not accepted this long after it reached the portal passes on.",
    )
    accept_timeout_text: str | None = Field(
        default=None, max_length=4096, description="Told to the customer when an offer expires."
    )
    no_answer_timeout_s: float | None = Field(
        default=None,
        gt=0,
        le=30 * 86_400,
        description="Accepted but not answered this long: back to the queue (each time).",
    )
    no_answer_text: str | None = Field(
        default=None, max_length=4096, description="Told to the customer when that happens."
    )
    no_operator_timeout_s: float | None = Field(
        default=None,
        gt=0,
        le=30 * 86_400,
        description="Waiting this long with no operator: the customer gets no_operator_text.",
    )
    no_operator_text: str | None = Field(
        default=None, max_length=4096, description="The text; the dialog keeps waiting."
    )

    @model_validator(mode="after")
    def _text_with_timer(self) -> TimerRules:
        if self.no_operator_timeout_s is not None and not self.no_operator_text:
            raise ValueError("no_operator_timeout_s needs no_operator_text")
        return self


class OutsideHoursRules(ConfigModel):
    text: str | None = Field(
        default=None,
        max_length=4096,
        description="Auto-reply outside hours; {opens_at} is the next opening in the zone.",
    )
    action: Literal["wait", "transfer"] = Field(
        default="wait", description="wait for opening, or transfer to `transfer_to_line`."
    )
    transfer_to_line: str | None = Field(
        default=None, pattern=ID_PATTERN, description="The line that takes dialogs outside hours."
    )

    @model_validator(mode="after")
    def _target(self) -> OutsideHoursRules:
        if (self.action == "transfer") != (self.transfer_to_line is not None):
            raise ValueError("action transfer needs transfer_to_line, and only it")
        return self


class UnavailableRule(ConfigModel):
    action: UnavailableAction = Field(
        default="return", description="return to the queue, keep with the operator, or close."
    )
    grace_s: float = Field(
        default=0.0, ge=0, le=30 * 86_400, description="Wait this long for the operator first."
    )
    customer_text: str | None = Field(
        default=None, max_length=4096, description="Told to the customer when the action runs."
    )


def _default_unavailable() -> dict[UnavailableReason, UnavailableRule]:
    return {
        "offline": UnavailableRule(action="return", grace_s=300.0),
        "away": UnavailableRule(action="keep"),
        "end_of_day": UnavailableRule(action="return"),
        "vacation": UnavailableRule(action="return"),
        "removed": UnavailableRule(action="return"),
    }


class CrmRules(ConfigModel):
    chain: tuple[FallbackStep, ...] = Field(
        default=("responsible", "last_operator", "queue"),
        min_length=1,
        description="Who a returning customer's dialog goes to, tried in this order.",
    )
    wait_for_responsible_s: float = Field(
        default=0.0,
        ge=0,
        le=7 * 86_400,
        description="Wait this long for an unavailable responsible before falling back.",
    )
    lead: Literal["none", "new_customer"] = Field(
        default="none", description="new_customer: open a lead when a new contact writes."
    )
    default_region: Region | None = Field(
        default=None,
        description="Country of phone numbers without a country code; else the portal's.",
    )
    identities_from_text: bool = Field(
        default=False,
        description="Link by phone numbers and e-mail addresses the customer writes in texts.",
    )

    @model_validator(mode="after")
    def _ends_in_queue(self) -> CrmRules:
        if self.chain[-1] != "queue" or len(set(self.chain)) != len(self.chain):
            raise ValueError("chain lists each step once and ends with queue")
        return self


class QueuePositionRules(ConfigModel):
    on_join: bool = Field(default=False, description="Tell the position when a dialog queues.")
    on_move: bool = Field(default=False, description="Tell it again each time it moves up.")
    text: str = Field(
        default="You are number {position} in the queue. Expected wait: {wait_min} min.",
        max_length=4096,
        description="{position} (1 = next) and {wait_min} (estimated minutes) are filled in.",
    )
    average_handle_s: float = Field(
        default=300.0, gt=0, description="Per dialog ahead, for the estimated wait."
    )


class PersonaRules(ConfigModel):
    mode: PersonaMode = Field(
        default="profile",
        description=(
            "profile: the replying operator's display name; line_name: `name` for every "
            "operator; hidden: no name. Shown beside the reply where the channel shows a "
            "sender (with the avatar), else before the text."
        ),
    )
    name: str | None = Field(
        default=None, min_length=1, max_length=100, description="The name for line_name."
    )
    avatar_url: AvatarUrl | None = Field(
        default=None,
        description="An https picture for line_name, shown beside replies where the channel "
        "shows a sender (the widget).",
    )

    @model_validator(mode="after")
    def _name_with_line_name(self) -> PersonaRules:
        if (self.mode == "line_name") != (self.name is not None):
            raise ValueError("mode line_name needs name, and only it")
        if self.avatar_url is not None and self.mode != "line_name":
            raise ValueError(
                "avatar_url is the line's picture for mode line_name; with mode profile each "
                "operator's profile has theirs"
            )
        return self


class OperatorRules(ConfigModel):
    hours: HoursConfig | None = Field(
        default=None, description="The operator's own working hours on this line."
    )


class LineRules(ConfigModel):
    portal: str = Field(pattern=ID_PATTERN, description="Portal the line belongs to.")
    line: str = Field(pattern=ID_PATTERN, description="The open line these rules route.")
    priority: int = Field(
        default=0,
        ge=-1000,
        le=1000,
        description="An operator on several lines gets dialogs of higher priority lines first.",
    )
    groups: dict[Annotated[str, Field(pattern=ID_PATTERN)], tuple[OperatorIdItem, ...]] = Field(
        default_factory=dict, description="Named groups of operator ids, for queue members."
    )
    queue: QueueRules = Field(description="Who answers, in which order, and how.")
    capacity: CapacityRules = Field(default_factory=CapacityRules, description="Load limits.")
    timers: TimerRules = Field(default_factory=TimerRules, description="Waiting limits.")
    hours: HoursConfig = Field(
        default_factory=lambda: HoursConfig(always_open=True),
        description="The line's working hours (default: always open).",
    )
    outside_hours: OutsideHoursRules = Field(
        default_factory=OutsideHoursRules, description="What a dialog outside hours gets."
    )
    require_work_day: bool = Field(
        default=False, description="Only operators who started their work day get dialogs."
    )
    unavailable: dict[UnavailableReason, UnavailableRule] = Field(
        default_factory=_default_unavailable,
        description="What happens to an operator's dialogs when they become unavailable.",
    )
    crm: CrmRules = Field(default_factory=CrmRules, description="Returning customers.")
    queue_position: QueuePositionRules = Field(
        default_factory=QueuePositionRules, description="Telling customers their place."
    )
    operators: dict[Annotated[str, Field(pattern=ID_PATTERN)], OperatorRules] = Field(
        default_factory=dict, description="Per-operator settings on this line, by id."
    )
    persona: PersonaRules = Field(
        default_factory=PersonaRules, description="How operators are named to customers."
    )
    reopen_within_s: float | None = Field(
        default=None,
        gt=0,
        le=30 * 86_400,
        description=(
            "A customer writing this soon after their dialog closed reopens it; "
            "null: a new dialog opens."
        ),
    )
    languages: LanguagesConfig | None = Field(
        default=None,
        description="The languages of the line's own texts and bot (docs/line-messages.md).",
    )
    messages: MessagesConfig = Field(
        default_factory=MessagesConfig,
        description="What the line says on its own: greeting, consent, closing, rating, "
        "reminders, auto-close, KPI alerts (docs/line-messages.md).",
    )
    bot: BotConfig | None = Field(
        default=None, description="The bot that answers before operators (docs/bot.md)."
    )

    @model_validator(mode="after")
    def _known_names(self) -> LineRules:
        for member in self.queue.members:
            if member.group is not None and member.group not in self.groups:
                raise ValueError(f"queue member group {member.group!r} is not in groups")
        for name, ids in self.groups.items():
            if not ids:
                raise ValueError(f"group {name!r} has no operators")
        strangers = sorted(set(self.operators) - set(self.queue_order))
        if strangers:
            raise ValueError(f"operators {strangers} have settings but are not in the queue")
        if self.outside_hours.transfer_to_line == self.line:
            raise ValueError("outside_hours.transfer_to_line cannot be the line itself")
        return self

    def unavailable_rule(self, reason: UnavailableReason) -> UnavailableRule:
        """The configured rule, or the default for a reason the file does not mention."""
        return self.unavailable.get(reason) or _default_unavailable()[reason]

    @cached_property
    def queue_order(self) -> tuple[str, ...]:
        """Operator ids in queue order, groups expanded, each once."""
        ordered: dict[str, None] = {}
        for member in self.queue.members:
            ids = (member.operator,) if member.operator else self.groups[member.group or ""]
            for operator_id in ids:
                ordered.setdefault(operator_id, None)
        return tuple(ordered)

    @cached_property
    def schedule(self) -> Schedule:
        return Schedule.from_config(self.hours)

    @property
    def sections(self) -> LineSections:
        """The line's own messages and bot as ``engine.line_texts`` reads them."""
        return LineSections(languages=self.languages, messages=self.messages, bot=self.bot)

    @cached_property
    def texts(self) -> LineTexts | None:
        """What the dispatcher calls for the line's own messages and its bot; None when the
        file has none of them, so such a line does exactly what it did before they existed.
        ``ConfigError`` if the sections were not checked across (``load_rules_file`` does)."""
        if self.languages is None and self.bot is None and self.messages == MessagesConfig():
            return None
        return LineTexts.build(self.sections)

    @cached_property
    def operator_schedules(self) -> dict[str, Schedule]:
        return {
            operator_id: Schedule.from_config(rules.hours)
            for operator_id, rules in self.operators.items()
            if rules.hours is not None
        }


@dataclass(frozen=True)
class RuleSet:
    """Every line's rules at one version: what the router decides with."""

    version: int = 0
    lines: dict[tuple[str, str], LineRules] = field(default_factory=dict)
    fingerprint: tuple[tuple[str, str], ...] = ()

    def for_line(self, portal_id: str, line_id: str) -> LineRules | None:
        return self.lines.get((portal_id, line_id))

    def for_portal(self, portal_id: str) -> PortalRules:
        return PortalRules(
            self.version,
            {line: rules for (portal, line), rules in self.lines.items() if portal == portal_id},
        )


@dataclass(frozen=True)
class PortalRules:
    """One portal's part of a rule set, what its router holds."""

    version: int = 0
    lines: dict[str, LineRules] = field(default_factory=dict)

    def line(self, line_id: str) -> LineRules | None:
        return self.lines.get(line_id)

    @cached_property
    def lines_of_operator(self) -> dict[str, tuple[str, ...]]:
        """Operator id to the lines whose queue holds them, highest priority first."""
        found: dict[str, list[LineRules]] = {}
        for rules in self.lines.values():
            for operator_id in rules.queue_order:
                found.setdefault(operator_id, []).append(rules)
        return {
            operator_id: tuple(r.line for r in sorted(lines, key=lambda r: (-r.priority, r.line)))
            for operator_id, lines in found.items()
        }


def rules_fingerprint(directory: Path) -> tuple[tuple[str, str], ...]:
    """Names and content digests of the rule files: what a reload compares.

    Not modification times and sizes: file times move only once per kernel tick, so two
    saves of the same size within one tick would look unchanged and the edit be missed.
    Rule files are small; hashing them on every check is cheap.
    """
    if not directory.is_dir():
        return ()
    return tuple((path.name, _digest(path)) for path in sorted(directory.glob("*.yaml")))


def _digest(path: Path) -> str:
    """The file's content digest; an unreadable file is named by its error, so that the
    loader reports it as that file's problem rather than the folder's."""
    try:
        return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
    except OSError as exc:
        return f"unreadable: {exc.strerror}"


def load_rules(directory: Path, version: int) -> RuleSet:
    """Load every ``*.yaml`` in ``directory``; all errors are reported together.

    An unreadable file (permissions, removed while listing) is an error like an invalid one:
    the caller keeps the rules in force.
    """
    lines: dict[tuple[str, str], LineRules] = {}
    sources: dict[tuple[str, str], str] = {}
    errors: list[str] = []
    try:
        fingerprint = rules_fingerprint(directory)
        paths = sorted(directory.glob("*.yaml")) if directory.is_dir() else []
    except OSError as exc:
        raise ConfigError(f"{directory}: cannot read the rules folder: {exc}") from None
    for path in paths:
        try:
            rules = load_rules_file(path)
        except ConfigError as exc:
            errors.append(str(exc))
            continue
        key = (rules.portal, rules.line)
        if key in lines:
            errors.append(
                f"{path}: line {rules.line!r} of portal {rules.portal!r} "
                f"is already routed by {sources[key]}"
            )
            continue
        lines[key] = rules
        sources[key] = str(path)
    errors.extend(_transfer_errors(lines, sources))
    if errors:
        raise ConfigError("\n".join(errors))
    return RuleSet(version, lines, fingerprint)


def _transfer_errors(
    lines: dict[tuple[str, str], LineRules], sources: dict[tuple[str, str], str]
) -> list[str]:
    """A line that sends dialogs to another line outside hours must name a routed line."""
    errors = []
    for key, rules in lines.items():
        target = rules.outside_hours.transfer_to_line
        if target is not None and (rules.portal, target) not in lines:
            errors.append(
                f"{sources[key]}: outside_hours.transfer_to_line: portal {rules.portal!r} "
                f"has no routed line {target!r}"
            )
    return errors


def load_rules_file(path: Path) -> LineRules:
    """One rule file, validated; ``ConfigError`` names the file, line and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read rules: {exc}") from None
    rules = parse_yaml_model(LineRules, text, str(path))
    check_sections(rules.sections, str(path), text)  # texts against languages, labels
    return rules
