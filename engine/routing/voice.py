"""The line's own voice in the dispatcher: greeting, consent, closing, rating, reminders,
auto-close and KPI alerts, and the bot before operators (``engine.routing.bot_turns``).

The texts and the rules of when to say them are the pure modules' (``engine.line_texts``,
``engine.bot``); this module is where the dispatcher calls them (docs/line-messages.md and
docs/bot.md, "How the dispatcher calls it"). What they need to remember of a dialog lives in
its ``VoiceState``, stored with the dialog in the same transaction as every other change, so
a restarted router recomputes the timers from it and the bot continues where it stopped.
What the line says is a ``Notice`` of the plan: sent like the routing rules' own texts, as a
reply with origin ``line`` (or ``bot``), carrying its buttons.

A dialog the bot answers, or one whose customer has not given the consent the line requires
before routing, is **held**: waiting, but outside the queue (``dialog.held``), until the bot
hands it over or the customer consents (``dialog.queued``, ``released``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from engine.buttons.press import CustomerInput, customer_input
from engine.events import (
    DialogConsent,
    DialogHandedOver,
    DialogHeld,
    DialogKpiExceeded,
    DialogRated,
    HeldReason,
    ReplyOrigin,
)
from engine.line_texts.answers import ConsentAnswer, RatingAnswer
from engine.line_texts.languages import language_of
from engine.line_texts.line import ConsentStatus
from engine.line_texts.render import LineReply, TextContext
from engine.line_texts.sections import LineTexts
from engine.line_texts.templates import TextValues
from engine.line_texts.timers import AnswerWait, AutoCloseDue, CustomerSilence, FollowUpDue
from engine.models import InboundMessage
from engine.routing import plan
from engine.routing.bot_turns import BotTurns
from engine.routing.plan import CustomerOwners, Notice
from engine.routing.reply_text import persona_name
from engine.routing.state import DialogState, VoiceState, moved

if TYPE_CHECKING:
    from engine.routing.dispatcher import Dispatcher


@dataclass(frozen=True, slots=True)
class Heard:
    """What the line reads of one customer message: who wrote, in which language, and the
    text or button press (``engine.buttons.press``)."""

    customer_name: str | None
    language: str | None
    input: CustomerInput


def heard_of(message: InboundMessage) -> Heard:
    return Heard(message.customer.name, language_of(message), customer_input(message))


class LineVoice:
    """The lines' own messages and bots of one portal, through its dispatcher."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.bots = BotTurns(self)

    def texts(self, line_id: str) -> LineTexts | None:
        rules = self.dispatcher.line(line_id)
        return rules.texts if rules is not None else None

    @property
    def listening(self) -> bool:
        """Whether any line of the portal reads its customers' messages (then the router
        hands the dispatcher what each message says)."""
        return any(rules.texts is not None for rules in self.dispatcher.rules.lines.values())

    @property
    def rating_lines(self) -> bool:
        """Whether a finished dialog may wait for its rating (the router then looks up the
        closed dialog of a conversation without an open one)."""
        return any(
            rules.messages.rating is not None for rules in self.dispatcher.rules.lines.values()
        )

    # -- saying -------------------------------------------------------------------------------

    def say(
        self, dialog: DialogState, reply: LineReply | None, origin: ReplyOrigin = "line"
    ) -> None:
        """Send ``reply`` (with its buttons) to the dialog's customer, if there is one."""
        if reply is not None:
            notice = Notice(
                self.dispatcher.ids("rpl"), dialog.dialog_id, reply.text, reply.keyboard, origin
            )
            self.dispatcher.plan.notices.append(notice)

    def context(
        self, dialog: DialogState, texts: LineTexts, now: float, position: int | None = None
    ) -> TextContext:
        """The customer's language and the placeholders' values for ``dialog`` now;
        ``position``: its place in the queue when it is about to join it."""
        dispatcher = self.dispatcher
        voice = dialog.voice or VoiceState()
        rules = dispatcher.line(dialog.line_id)
        operator = dispatcher.board.operator(dialog.operator_id) if dialog.operator_id else None
        closed = rules is not None and not rules.schedule.is_open(now)
        values = TextValues(
            customer_name=voice.customer_name,
            operator_name=persona_name(rules.persona, operator) if rules and operator else None,
            line_name=dispatcher.line_name(dialog.line_id),
            opens_at=rules.schedule.describe_opening(now) if rules and closed else None,
            queue_position=position if position is not None else self._position(dialog),
        )
        return texts.renderer.context(voice.language, values)

    def _position(self, dialog: DialogState) -> int | None:
        if dialog.state != "waiting" or dialog.held is not None:
            return None
        queue = self.dispatcher.board.waiting_ids(dialog.line_id)
        rules = self.dispatcher.line(dialog.line_id)
        if rules is not None and rules.queue.order == "newest_first":
            queue.reverse()
        return queue.index(dialog.dialog_id) + 1 if dialog.dialog_id in queue else None

    def put(self, dialog: DialogState, voice: VoiceState, **changes: object) -> DialogState:
        return self.dispatcher.put(moved(dialog, voice=voice, **changes))

    # -- a dialog opens -----------------------------------------------------------------------

    def opening(
        self,
        dialog: DialogState,
        owners: CustomerOwners | None,
        heard: Heard | None,
        now: float,
        *,
        greet: bool,
    ) -> DialogState:
        """A dialog that opens, new or reopened, before it joins the queue: the greeting
        (``greet``: a new dialog), the consent request, the bot; returns it with ``held``
        set when the bot takes it or routing waits for consent (docs/line-messages.md)."""
        texts = self.texts(dialog.line_id)
        if texts is None:
            return dialog
        earlier = dialog.voice or VoiceState()
        consent = owners.consent if owners is not None else earlier.consent
        if consent == "unknown":
            consent = earlier.consent
        voice = VoiceState(
            customer_name=heard.customer_name if heard else earlier.customer_name,
            language=heard.language if heard else earlier.language,
            consent=consent,
        )
        dialog = moved(dialog, voice=voice)
        messages = texts.messages
        bot = texts.bot.start(now).to_json() if texts.bot is not None else None
        held: HeldReason | None = None
        if bot is not None:
            held = "bot"  # the consent gate applies when the bot hands over
        elif not messages.routing_allowed(_status(consent)):
            held = "consent"
        joins = self.dispatcher.join_position(dialog.line_id) if held is None else None
        context = self.context(dialog, texts, now, joins)
        if greet:
            first = owners is None or dialog.line_id not in owners.lines
            self.say(dialog, messages.greeting(context, first_dialog=first))
        asked = messages.consent_needed(_status(consent))
        if asked:
            self.say(dialog, messages.consent_request(context))
        return moved(dialog, held=held, voice=replace(voice, consent_asked=asked, bot=bot))

    def hold(self, dialog: DialogState, now: float) -> DialogState:
        """The dialog waits outside the queue for ``dialog.held``'s reason."""
        assert dialog.held is not None
        held = self.dispatcher.put(moved(dialog, told_position=None))
        self.dispatcher.emit(held, DialogHeld(reason=dialog.held), now)
        return held

    def release(self, dialog: DialogState, now: float) -> DialogState:
        """The bot handed the dialog over, or the customer consented: it joins the queue,
        unless the line still waits for consent; the customer's wait for an operator starts."""
        texts = self.texts(dialog.line_id)
        voice = dialog.voice or VoiceState()
        if texts is not None and not texts.messages.routing_allowed(_status(voice.consent)):
            if dialog.held == "consent":
                return dialog
            return self.hold(moved(dialog, held="consent"), now)
        waits = replace(voice, wait_since=voice.wait_since or now, wait_alerted=False)
        joining = moved(dialog, held=None, voice=waits, waiting_since=now, queued_at=now, tried=())
        return self.dispatcher.join_queue(joining, "released", now)

    def rules_changed(self, now: float) -> None:
        """New rules: a held dialog whose line no longer holds it joins the queue."""
        for dialog in list(self.dispatcher.board.dialogs.values()):
            texts = self.texts(dialog.line_id)
            if dialog.held == "bot" and (texts is None or texts.bot is None):
                dialog = self.bots.leave(dialog)
                self.dispatcher.emit(dialog, DialogHandedOver(reason="bot_removed"), now)
                self.release(dialog, now)
            elif dialog.held == "consent":
                voice = dialog.voice or VoiceState()
                if texts is None or texts.messages.routing_allowed(_status(voice.consent)):
                    self.release(dialog, now)

    # -- the customer writes ------------------------------------------------------------------

    def heard(self, dialog_id: str, heard: Heard, now: float, *, fresh: bool) -> None:
        """A customer message of an open dialog, after it joined the dialog's stream: an
        answer to a pending consent request, or the bot's turn, or a wait for an operator's
        answer (KPI). It ends the customer's silence. ``fresh``: the message opened the
        dialog, so it cannot answer the requests the opening just sent."""
        dialog = self.dispatcher.board.with_dialog(dialog_id)
        texts = self.texts(dialog.line_id) if dialog is not None else None
        if dialog is None or texts is None:
            return
        earlier = dialog.voice or VoiceState()
        voice = replace(
            earlier,
            customer_name=heard.customer_name or earlier.customer_name,
            language=heard.language or earlier.language,
            silent_since=None,
            follow_ups_sent=0,
        )
        dialog = self.put(dialog, voice)
        context = self.context(dialog, texts, now)
        if voice.consent_asked and not fresh:
            answer = texts.messages.read_consent(heard.input, context.language)
            if answer is not None:
                self._consented(dialog, texts, answer, context, now)
                return
        if dialog.held == "bot" and texts.bot is not None:
            self.bots.read(dialog, texts.bot, heard.input, context, now)
        elif dialog.held is None and voice.wait_since is None:
            self.put(dialog, replace(voice, wait_since=now, wait_alerted=False))

    def _consented(
        self,
        dialog: DialogState,
        texts: LineTexts,
        answer: ConsentAnswer,
        context: TextContext,
        now: float,
    ) -> None:
        """Store the answer with the dialog and its contact; a refusal leaves the request
        pending, so the customer can still consent later in the dialog. The reply comes after
        the release, so it can name the queue position or the operator who took it."""
        voice = dialog.voice or VoiceState()
        status: ConsentStatus = "given" if answer.given else "declined"
        dialog = self.put(dialog, replace(voice, consent=status, consent_asked=not answer.given))
        self.dispatcher.emit(dialog, DialogConsent(given=answer.given, via=answer.via), now)
        if dialog.contact_id is not None:
            record = plan.ConsentAnswer(dialog.contact_id, answer.given, now, dialog.dialog_id)
            self.dispatcher.plan.consents[dialog.contact_id] = record
        if answer.given and dialog.held == "consent":
            dialog = self.release(dialog, now)
            context = self.context(dialog, texts, now)
        self.say(dialog, texts.messages.consent_reply(answer, context))

    def rating_of(
        self, previous: DialogState, heard: Heard | None, now: float
    ) -> RatingAnswer | None:
        """The rating a message to a finished dialog gives, if it waits for one and this is
        one; anything else opens a new dialog as usual (docs/line-messages.md, "Answers")."""
        voice = previous.voice
        texts = self.texts(previous.line_id)
        if heard is None or texts is None or voice is None or not voice.rating_asked:
            return None
        if previous.state != "closed":
            return None
        language = self.context(previous, texts, now).language
        return texts.messages.read_rating(heard.input, language)

    def rate(self, previous: DialogState, answer: RatingAnswer, now: float) -> DialogState:
        """Store the rating with the finished dialog and the operator it rates; thank."""
        texts = self.texts(previous.line_id)
        voice = previous.voice or VoiceState()
        rated = self.put(previous, replace(voice, rating_asked=False, rating=answer.score))
        data = DialogRated(
            operator_id=previous.operator_id, scale=answer.scale, score=answer.score, via=answer.via
        )
        self.dispatcher.emit(rated, data, now)
        if texts is not None:
            self.say(rated, texts.messages.rating_thanks(self.context(rated, texts, now)))
        return rated

    # -- operators ----------------------------------------------------------------------------

    def replied(self, dialog: DialogState, now: float) -> DialogState:
        """An operator's reply: the customer's wait ends, their silence starts."""
        texts = self.texts(dialog.line_id)
        if texts is None:
            return dialog
        voice = dialog.voice or VoiceState()
        config = texts.messages.config
        silence = config.auto_close is not None or bool(config.follow_ups)
        return self.put(
            dialog,
            replace(
                voice,
                answered_at=voice.answered_at if voice.answered_at is not None else now,
                wait_since=None,
                wait_alerted=False,
                silent_since=now if silence else None,
                follow_ups_sent=0,
            ),
        )

    def finished(self, closed: DialogState, now: float) -> None:
        """An operator finished the dialog: the closing text, then the rating request when
        it had an operator to rate."""
        texts = self.texts(closed.line_id)
        if texts is None:
            return
        context = self.context(closed, texts, now)
        self.say(closed, texts.messages.closing(context))
        request = texts.messages.rating_request(context) if closed.operator_id else None
        if request is not None:
            self.say(closed, request)
            voice = closed.voice or VoiceState()
            self.put(closed, replace(voice, rating_asked=True))

    # -- timers -------------------------------------------------------------------------------

    def deadline(self, dialog: DialogState) -> float | None:
        """When the bot's time runs out, an answer breaches the KPI, or the customer's
        silence calls for a reminder or the auto-close; None when nothing waits on time."""
        texts = self.texts(dialog.line_id)
        voice = dialog.voice
        if texts is None or voice is None:
            return None
        times = [
            at
            for at in (
                self.bots.wake_at(dialog, texts.bot),
                texts.messages.kpi_wake_at(_wait(voice)) if _waits(dialog) else None,
                texts.messages.silence_wake_at(_silence(voice)) if voice.silent_since else None,
            )
            if at is not None
        ]
        return min(times) if times else None

    def fire(self, dialog_id: str, now: float) -> None:
        """Whatever of the dialog's own timers fell due by ``now``, each once."""
        dialog = self.dispatcher.board.with_dialog(dialog_id)
        texts = self.texts(dialog.line_id) if dialog is not None else None
        if dialog is None or texts is None or dialog.voice is None:
            return
        if texts.bot is not None:
            self.bots.fire(dialog, texts.bot, self.context(dialog, texts, now), now)
        self._kpi(dialog_id, texts, now)
        self._silence(dialog_id, texts, now)

    def _kpi(self, dialog_id: str, texts: LineTexts, now: float) -> None:
        dialog = self.dispatcher.board.with_dialog(dialog_id)
        if dialog is None or dialog.voice is None or not _waits(dialog):
            return
        breach = texts.messages.kpi_breach(_wait(dialog.voice), now)
        if breach is not None:
            dialog = self.put(dialog, replace(dialog.voice, wait_alerted=True))
            self.dispatcher.emit(dialog, DialogKpiExceeded(**breach.model_dump()), now)

    def _silence(self, dialog_id: str, texts: LineTexts, now: float) -> None:
        dialog = self.dispatcher.board.with_dialog(dialog_id)
        voice = dialog.voice if dialog is not None else None
        if dialog is None or voice is None or voice.silent_since is None:
            return
        due = texts.messages.silence_due(_silence(voice), now)
        if due is None:
            return
        self.say(dialog, texts.messages.silence_reply(due, self.context(dialog, texts, now)))
        if isinstance(due, FollowUpDue):
            self.put(dialog, replace(voice, follow_ups_sent=due.index + 1))
        elif isinstance(due, AutoCloseDue):
            dialog = self.put(dialog, replace(voice, silent_since=None, wait_since=None))
            self.dispatcher.close(dialog, "auto_closed", now)


def _status(consent: str) -> ConsentStatus:
    return "given" if consent == "given" else "declined" if consent == "declined" else "unknown"


def _waits(dialog: DialogState) -> bool:
    """A customer waits for an operator's answer, and the dialog is in operators' hands."""
    voice = dialog.voice
    return voice is not None and voice.wait_since is not None and dialog.held is None


def _wait(voice: VoiceState) -> AnswerWait:
    assert voice.wait_since is not None
    return AnswerWait(voice.wait_since, first=voice.answered_at is None, alerted=voice.wait_alerted)


def _silence(voice: VoiceState) -> CustomerSilence:
    assert voice.silent_since is not None
    return CustomerSilence(voice.silent_since, voice.follow_ups_sent)
