"""The bot before operators: a pure state machine over one dialog.

``BotSession`` holds a line's compiled bot; a dialog's progress is a ``BotState``, a small
frozen model the dispatcher stores as JSON with the dialog. Each call takes the state, what
happened (a customer's message, or the clock reaching ``wake_at``) and the time, and returns
a ``BotStep``: the next state, the replies to send, and whether to hand the dialog over to
operators, and why. No I/O, no clock, no randomness: the same inputs give the same step,
so a dialog replays and a restart loses nothing.

What the bot does with a message, in order (``docs/bot.md``, "How the bot answers"):

1. Past ``handover.after_s`` since its start, it hands over (``timed_out``).
2. A button of ours, pressed, or the label or number of a button it just offered, typed:
   that choice (an answer, the hand-over, the menu).
3. A hand-over keyword: hand over (``requested``).
4. The first rule whose keywords or regex match: its answer, with its buttons (or the
   menu's, so the customer always has a way on).
5. Nothing matched: on the customer's first message, the menu if there is one; else the
   fallback text (hand over with ``no_rule`` when there is none, or after
   ``handover.after_misses`` misses in a row).

Once it handed over, or an operator took the dialog (``operator_took``), the bot is silent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from engine.bot.config import BotChoice, BotConfig, BotRule
from engine.bot.keywords import any_found, words
from engine.bot.regex_guard import MAX_MATCHED_CHARS
from engine.buttons.keyboard import Button, Keyboard, make_payload
from engine.buttons.press import CustomerInput
from engine.line_texts.render import LineReply, TextContext, TextRenderer
from engine.models import Frozen

HandoverReason = Literal["requested", "timed_out", "no_rule"]
BotPhase = Literal["active", "handed_over", "left"]
MENU = "m"


class BotState(Frozen):
    """One dialog's progress with the bot; JSON for durable storage (``to_json``)."""

    phase: BotPhase = Field(default="active", description="active, handed_over or left.")
    started_at: float = Field(description="When the bot took the dialog, unix seconds.")
    turns: int = Field(default=0, ge=0, description="Customer messages the bot has read.")
    misses: int = Field(default=0, ge=0, description="Misunderstood messages in a row.")
    offered: str | None = Field(
        default=None, description="The keyboard last offered: 'm' (menu) or 'r<i>' (rule i)."
    )
    handover_reason: HandoverReason | None = None

    def to_json(self) -> str:
        return self.model_dump_json()

    def left(self) -> BotState:
        """The bot left the dialog for good: an operator took it."""
        return self.model_copy(update={"phase": "left", "offered": None})

    @classmethod
    def from_json(cls, text: str | bytes) -> BotState:
        return cls.model_validate_json(text)


@dataclass(frozen=True)
class BotStep:
    """What one event did: the new state, what to send, and a hand-over if there is one."""

    state: BotState
    replies: tuple[LineReply, ...] = ()
    handover: HandoverReason | None = None


class BotSession:
    """A line's bot; one instance serves all of the line's dialogs (it holds no dialog)."""

    def __init__(self, config: BotConfig, renderer: TextRenderer) -> None:
        self.config = config
        self.renderer = renderer

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def start(self, now: float) -> BotState:
        """The state of a dialog the bot takes, as it opens."""
        return BotState(started_at=now)

    def wake_at(self, state: BotState) -> float | None:
        """When ``on_timer`` has something to do for this dialog, or ``None``."""
        after_s = self.config.handover.after_s
        if state.phase != "active" or after_s is None:
            return None
        return state.started_at + after_s

    def on_timer(self, state: BotState, now: float, context: TextContext) -> BotStep:
        """The clock reached ``wake_at``: hand over if the bot's time is up."""
        if state.phase == "active" and self._timed_out(state, now):
            return self._handover(state, "timed_out", context)
        return BotStep(state)

    def operator_took(self, state: BotState) -> BotState:
        """An operator took the dialog: the bot leaves it."""
        return state.left()

    def on_message(
        self, state: BotState, incoming: CustomerInput, now: float, context: TextContext
    ) -> BotStep:
        """The bot's step for one customer message (text, a press, or neither)."""
        if state.phase != "active":
            return BotStep(state)
        read = state.model_copy(update={"turns": state.turns + 1})
        if self._timed_out(state, now):
            return self._handover(read, "timed_out", context)
        choice = self._choice(incoming, state.offered, context.language)
        if choice is not None:
            return self._choose(read, choice, context)
        message_words = words(incoming.text or "")
        if any_found(self.config.handover.parsed_keywords, message_words):
            return self._handover(read, "requested", context)
        for index, rule in enumerate(self.config.rules):
            if _matches(rule, incoming.text or "", message_words):
                return self._answer(read, rule, index, context)
        return self._miss(read, first=state.turns == 0, context=context)

    # -- the steps

    def _timed_out(self, state: BotState, now: float) -> bool:
        after_s = self.config.handover.after_s
        return after_s is not None and now - state.started_at >= after_s

    def _handover(self, state: BotState, reason: HandoverReason, context: TextContext) -> BotStep:
        handed = state.model_copy(
            update={"phase": "handed_over", "handover_reason": reason, "offered": None}
        )
        text = self.config.handover.text
        replies = (LineReply(self.renderer.render(text, context)),) if text is not None else ()
        return BotStep(handed, replies, reason)

    def _choose(self, state: BotState, choice: BotChoice, context: TextContext) -> BotStep:
        if choice.handover:
            return self._handover(state, "requested", context)
        if choice.menu or choice.answer is None:
            return self._show_menu(state, context)
        return self._reply(state, self.renderer.render(choice.answer, context), None, context)

    def _answer(self, state: BotState, rule: BotRule, index: int, context: TextContext) -> BotStep:
        text = self.renderer.render(rule.answer, context)
        return self._reply(state, text, f"r{index}" if rule.buttons else None, context)

    def _reply(
        self, state: BotState, text: str, keyboard_id: str | None, context: TextContext
    ) -> BotStep:
        """An answer, with its own buttons, else the menu's (when there is a menu)."""
        if keyboard_id is None and self.config.menu is not None:
            keyboard_id = MENU
        keyboard = self._keyboard(keyboard_id, context.language) if keyboard_id else None
        after = state.model_copy(update={"misses": 0, "offered": keyboard_id})
        return BotStep(after, (LineReply(text, keyboard),))

    def _show_menu(self, state: BotState, context: TextContext) -> BotStep:
        menu = self.config.menu
        if menu is None:  # a choice asked for a menu that was since removed from the file
            return self._miss(state, first=False, context=context)
        text = self.renderer.render(menu.text, context)
        return self._reply(state, text, MENU, context)

    def _miss(self, state: BotState, *, first: bool, context: TextContext) -> BotStep:
        if first and self.config.menu is not None:
            return self._show_menu(state, context)
        fallback = self.config.fallback
        misses = state.misses + 1
        limit = self.config.handover.after_misses
        if fallback is None or (limit is not None and misses >= limit):
            return self._handover(state.model_copy(update={"misses": misses}), "no_rule", context)
        step = self._reply(state, self.renderer.render(fallback, context), None, context)
        return BotStep(step.state.model_copy(update={"misses": misses}), step.replies)

    # -- keyboards and choices

    def _choices(self, keyboard_id: str | None) -> tuple[BotChoice, ...]:
        """The choices of a keyboard id; ``()`` for one the current file no longer has."""
        if keyboard_id == MENU:
            return self.config.menu.items if self.config.menu is not None else ()
        if keyboard_id is not None and keyboard_id[1:].isdecimal():
            index = int(keyboard_id[1:])
            if keyboard_id[0] == "r" and index < len(self.config.rules):
                return self.config.rules[index].buttons
        return ()

    def _keyboard(self, keyboard_id: str, language: str) -> Keyboard | None:
        choices = self._choices(keyboard_id)
        if not choices:
            return None
        return Keyboard.column(
            tuple(
                Button(
                    label=self.renderer.pick(choice.label, language),
                    payload=choice_payload(keyboard_id, index, choice),
                )
                for index, choice in enumerate(choices)
            )
        )

    def _choice(
        self, incoming: CustomerInput, offered: str | None, language: str
    ) -> BotChoice | None:
        """The choice ``incoming`` makes: a press of any of the bot's buttons still valid
        under the current file, or the label or number of the keyboard last offered."""
        if incoming.payload is not None:
            pressed = self._pressed(incoming.payload)
            if pressed is not None:
                return pressed
        keyboard = self._keyboard(offered, language) if offered is not None else None
        if keyboard is None:
            return None
        chosen = incoming.choice(keyboard)
        return self._pressed(chosen) if chosen is not None else None

    def _pressed(self, payload: str) -> BotChoice | None:
        parts = payload.split(":")
        if len(parts) != 5 or parts[:2] != ["ol", "bot"] or not parts[3].isdecimal():
            return None
        choices = self._choices(parts[2])
        index = int(parts[3])
        if index >= len(choices) or choice_payload(parts[2], index, choices[index]) != payload:
            return None  # a button of an older version of the file
        return choices[index]


def choice_payload(keyboard_id: str, index: int, choice: BotChoice) -> str:
    """``ol:bot:<keyboard>:<index>:<label digest>``: the digest makes a button of an older
    version of the file (rules reordered, a label changed) a stranger, not another choice."""
    digest = hashlib.blake2b(choice.label.model_dump_json().encode(), digest_size=3).hexdigest()
    return make_payload("bot", keyboard_id, str(index), digest)


def _matches(rule: BotRule, text: str, message_words: tuple[str, ...]) -> bool:
    if any_found(rule.match.parsed_keywords, message_words):
        return True
    pattern = rule.match.compiled
    return pattern is not None and pattern.search(text[:MAX_MATCHED_CHARS]) is not None
