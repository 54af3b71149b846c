"""The line's bot taking its turns in held dialogs (docs/bot.md, "How the dispatcher calls
it").

``engine.bot.session.BotSession`` decides; this applies its steps to a dialog: the bot's new
state is stored with the dialog (its ``VoiceState``, as JSON), its answers are sent as
replies with origin ``bot``, and a hand-over (requested, timed out, not understood) gives
the dialog to operators through ``LineVoice.release``, which still waits for consent where
the line requires it. When an operator takes the dialog the bot leaves it for good.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from engine.bot.session import BotSession, BotState, BotStep
from engine.buttons.press import CustomerInput
from engine.events import DialogHandedOver
from engine.line_texts.render import TextContext
from engine.routing.state import DialogState, VoiceState

if TYPE_CHECKING:
    from engine.routing.voice import LineVoice


class BotTurns:
    def __init__(self, voice: LineVoice) -> None:
        self._voice = voice

    def read(
        self,
        dialog: DialogState,
        bot: BotSession,
        incoming: CustomerInput,
        context: TextContext,
        now: float,
    ) -> None:
        """The bot's turn on a customer's message."""
        state = _state(dialog)
        if state is not None:
            self._apply(dialog, bot.on_message(state, incoming, now, context), now)

    def wake_at(self, dialog: DialogState, bot: BotSession | None) -> float | None:
        state = _state(dialog)
        if bot is None or state is None or dialog.held != "bot":
            return None
        return bot.wake_at(state)

    def fire(self, dialog: DialogState, bot: BotSession, context: TextContext, now: float) -> None:
        """The bot's time limit (``handover.after_s``) passed: it hands over."""
        state = _state(dialog)
        if state is not None and dialog.held == "bot":
            self._apply(dialog, bot.on_timer(state, now, context), now)

    def leave(self, dialog: DialogState) -> DialogState:
        """An operator takes the dialog (or the line's bot is gone): the bot leaves it."""
        voice = left(dialog.voice)
        if voice is None or voice is dialog.voice:
            return dialog
        return self._voice.put(dialog, voice)

    def _apply(self, dialog: DialogState, step: BotStep, now: float) -> None:
        voice = dialog.voice or VoiceState()
        dialog = self._voice.put(dialog, replace(voice, bot=step.state.to_json()))
        for reply in step.replies:
            self._voice.say(dialog, reply, "bot")
        if step.handover is not None:
            self._voice.dispatcher.emit(dialog, DialogHandedOver(reason=step.handover), now)
            self._voice.release(dialog, now)


def left(voice: VoiceState | None) -> VoiceState | None:
    """``voice`` with its bot gone for good (``BotSession.operator_took``); the same object
    when there was no bot in it, so a line without one pays nothing."""
    state = BotState.from_json(voice.bot) if voice is not None and voice.bot else None
    if voice is None or state is None or state.phase == "left":
        return voice
    return replace(voice, bot=state.left().to_json())


def _state(dialog: DialogState) -> BotState | None:
    voice = dialog.voice
    return BotState.from_json(voice.bot) if voice is not None and voice.bot else None
