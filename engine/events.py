"""What a portal receives: every event type is a model, so the protocol is generated, not typed.

A delivered event is ``{id, seq, type, best_effort, occurred_at, dialog, data}``
(``engine.delivery.envelope``). ``dialog`` is a ``DialogView``: the dialog as it stands at
that point of its stream, stamped by the dialog's owner when the event joined the stream,
so an event never names an operator the dialog no longer has there. ``data`` is the model
registered for the event's type in ``EVENT_TYPES``.

The published JSON Schema follows that registry (``engine.protocol.schema``): a type added
there is in the schema without other code, and the tests fail until the schema is written
again (``openlines protocol schema --write``) and docs/protocol.md describes the type and
every field of its data.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from engine.models import ChannelEvent, Frozen, InboundMessage

DialogStateName = Literal["waiting", "offered", "assigned", "answered", "closed"]

QueuedReason = Literal["new", "transferred", "reopened", "released"]
WithdrawnReason = Literal[
    "taken", "expired", "skipped", "unavailable", "closed", "rules_changed", "transferred"
]
AssignedVia = Literal["accept", "direct", "responsible", "last_operator", "transfer"]
ReturnedReason = Literal["no_answer", "offline", "away", "end_of_day", "vacation", "removed"]
ClosedReason = Literal["finished", "auto_closed", "declined", "operator_unavailable"]
ReplyOrigin = Literal["operator", "line", "bot"]
UncertainReason = Literal["interrupted"]
ParticipantRole = Literal["invited", "supervisor"]
TransferReason = Literal["outside_hours", "operator"]
HeldReason = Literal["bot", "consent"]
HandoverReason = Literal["requested", "timed_out", "no_rule", "bot_removed"]
AnswerVia = Literal["button", "text"]
RatingScale = Literal["like_dislike", "five"]
KpiKind = Literal["first_answer", "next_answer"]


class Participant(Frozen):
    """An operator in a dialog besides its own operator (docs/routing.md, "Participants")."""

    operator_id: str = Field(description="The operator.")
    role: ParticipantRole = Field(
        description="invited: may reply; supervisor: joined silently, sees and never replies."
    )


class DialogView(Frozen):
    """A dialog as the portal sees it at one point of its stream."""

    id: str = Field(description="The dialog's id.")
    line_id: str = Field(description="The open line it belongs to now.")
    connector_id: str = Field(description="The connector the customer writes through.")
    channel: str = Field(description="The channel's name, e.g. telegram.")
    customer_id: str = Field(description="The customer's id in the channel.")
    state: DialogStateName = Field(description="Where the dialog is in its lifecycle.")
    operator_id: str | None = Field(description="The operator it is assigned to, if any.")
    offered_to: tuple[str, ...] = Field(description="Operators holding an open offer of it.")
    contact_id: str | None = Field(
        default=None, description="The customer's CRM contact (docs/crm.md)."
    )
    lead_id: str | None = Field(
        default=None, description="The contact's lead on this line, if one was opened."
    )
    pinned: bool = Field(
        default=False,
        description="Pinned to its operator: no rule or timer returns it to the queue.",
    )
    participants: tuple[Participant, ...] = Field(
        default=(),
        description="Invited operators and silent supervisors, in the order they joined.",
    )
    held: HeldReason | None = Field(
        default=None,
        description="Why a waiting dialog is outside its line's queue: bot (the line's bot "
        "answers it) or consent (the customer has not consented); null otherwise.",
    )
    window_closes_at: float | None = Field(
        default=None,
        description="On a channel with a messaging window (Facebook, Instagram, WhatsApp: 24 "
        "hours after the customer's last message): when it closes, unix seconds; a reply "
        "after it is refused (409 window_closed). Null on a channel without one.",
    )


class DialogQueued(Frozen):
    """The dialog waits in its line's queue."""

    reason: QueuedReason = Field(
        description="Why it (re)joined the queue: new, transferred, reopened, or released "
        "(the bot handed it over, or the customer consented)."
    )
    position: int | None = Field(description="1 = next to be served; null when not known.")
    opens_at: float | None = Field(
        default=None, description="Outside working hours: when the line opens, unix seconds."
    )


class DialogOffered(Frozen):
    """Offered to one operator, or to several at once (distribution ``all``)."""

    operator_ids: tuple[str, ...] = Field(description="Who may accept it.")
    accept_timeout_s: float = Field(
        description="The offer passes on this long after it reached the portal."
    )
    decision_id: str = Field(description="The routing decision, for its explanation.")


class DialogOfferWithdrawn(Frozen):
    """An open offer no longer stands for these operators."""

    operator_ids: tuple[str, ...] = Field(description="Whose offer was withdrawn.")
    reason: WithdrawnReason = Field(description="Why.")


class DialogAssigned(Frozen):
    """An operator now answers the dialog."""

    operator_id: str = Field(description="The operator.")
    via: AssignedVia = Field(description="How: accepted an offer, assigned directly, CRM.")
    decision_id: str | None = Field(description="The routing decision, if one made it.")


class DialogAnswered(Frozen):
    """The assigned operator answered the customer for the first time."""

    operator_id: str = Field(description="The operator who answered.")


class DialogReturned(Frozen):
    """Taken from its operator and back in the queue."""

    operator_id: str = Field(description="The operator it was taken from.")
    reason: ReturnedReason = Field(description="Why.")


class DialogTransferred(Frozen):
    """Moved to another open line or operator (outside working hours, or by an operator)."""

    from_line: str = Field(description="The line it was on.")
    to_line: str = Field(description="The line it is on now (the same for an operator).")
    reason: TransferReason = Field(
        description="outside_hours: the line was closed when it opened; operator: through the API."
    )
    from_operator_id: str | None = Field(
        default=None, description="The operator who had it or was offered it, if any."
    )
    to_operator_id: str | None = Field(
        default=None, description="The operator it goes to; null for a transfer to a line."
    )
    by: str | None = Field(default=None, description="The operator who transferred it, if named.")


class Decline(Frozen):
    """How a declined dialog was declined."""

    spam: bool = Field(description="Declined as spam (else: refused).")
    customer_told: bool = Field(description="The customer was sent the operator's text.")
    blocked: bool = Field(description="The customer's identity opens no more dialogs.")


class DialogClosed(Frozen):
    """The dialog ended; the customer's next message opens a new one (or reopens this one,
    within the line's ``reopen_within_s``)."""

    reason: ClosedReason = Field(description="Why it closed.")
    operator_id: str | None = Field(description="Its operator when it closed, if any.")
    closed_by: str | None = Field(
        default=None, description="The operator who finished or declined it, when one did."
    )
    decline: Decline | None = Field(
        default=None, description="For reason declined: spam or refused, told, blocked."
    )


class DialogReopened(Frozen):
    """The customer wrote again soon after it closed: the same dialog is open again."""

    closed_at: float = Field(description="When it had closed, unix seconds.")
    closed_reason: ClosedReason = Field(description="Why it had closed.")


class DialogPinned(Frozen):
    """Pinned to its operator: unavailable rules and the no-answer timer leave it there."""

    operator_id: str = Field(description="The operator it is pinned to.")
    by: str | None = Field(description="The operator who pinned it, if named.")


class DialogUnpinned(Frozen):
    """No longer pinned: the line's rules apply to it again."""

    operator_id: str = Field(description="The operator it was pinned to.")
    by: str | None = Field(description="The operator who unpinned it, if named.")


class DialogParticipantJoined(Frozen):
    """An operator joined the dialog beside its operator."""

    operator_id: str = Field(description="The operator who joined.")
    role: ParticipantRole = Field(description="invited (may reply) or supervisor (silent).")
    by: str | None = Field(description="Who invited them; the supervisor themself on a join.")


class DialogParticipantLeft(Frozen):
    """A participant left the dialog."""

    operator_id: str = Field(description="The operator who left.")
    role: ParticipantRole = Field(description="The role they had.")


class CustomerUnblocked(Frozen):
    """A customer blocked by a spam decline may open dialogs again (in the stream of the
    dialog whose decline blocked them)."""

    connector_id: str = Field(description="The connector the customer writes through.")
    customer_id: str = Field(description="The customer's id in the channel.")
    by: str | None = Field(description="The operator who unblocked them, if named.")
    messages: int = Field(description="Messages they sent while blocked (stored, not delivered).")


class DialogHeld(Frozen):
    """The dialog waits outside its line's queue and is offered to nobody: the line's bot
    answers it first, or the line routes nobody's dialog before their consent
    (docs/bot.md, docs/line-messages.md). ``dialog.queued`` (``released``) ends it."""

    reason: HeldReason = Field(
        description="bot: the line's bot answers first; consent: routing waits for the "
        "customer's consent to process their personal data."
    )


class DialogHandedOver(Frozen):
    """The line's bot gave the dialog to operators; it says nothing more in the dialog."""

    reason: HandoverReason = Field(
        description="requested: the customer asked for an operator; timed_out: the bot's "
        "handover.after_s passed; no_rule: the bot did not understand; bot_removed: the "
        "line's bot was turned off or removed from its file."
    )


class DialogConsent(Frozen):
    """The customer answered the line's request for consent to process their personal
    data; the answer is stored with their contact (docs/crm.md)."""

    given: bool = Field(description="true: consented; false: refused.")
    via: AnswerVia = Field(
        description="button: pressed a button (or typed its label or number); text: in words."
    )


class DialogRated(Frozen):
    """The customer rated the finished dialog; stored with the dialog and its operator."""

    operator_id: str | None = Field(
        description="The operator rated: the dialog's operator when it was finished."
    )
    scale: RatingScale = Field(description="like_dislike or five, as the line asked.")
    score: int = Field(description="five: 1 to 5; like_dislike: 1 (like) or 0 (dislike).")
    via: AnswerVia = Field(
        description="button: pressed a button (or typed its label or number); text: in words."
    )


class DialogKpiExceeded(Frozen):
    """A customer has waited longer for an operator's answer than the line's KPI allows
    (``messages.kpi``); told once per wait, the customer is told nothing."""

    kind: KpiKind = Field(
        description="first_answer: no operator has answered the dialog yet; next_answer: a "
        "later answer."
    )
    limit_s: float = Field(description="The line's limit for this kind of answer, seconds.")
    waiting_since: float = Field(description="When the wait began, Unix seconds.")
    waited_s: float = Field(description="How long it had lasted when this was noticed.")


class ReplyEvent(Frozen):
    """What every event about one reply names: the reply and where it came from."""

    reply_id: str
    client_id: str | None = Field(description="The portal's own id for it, echoed.")
    origin: ReplyOrigin = Field(
        description="operator: through the API; line: the line's own text; bot: the line's bot."
    )


class ReplySent(ReplyEvent):
    """A reply reached the customer's channel."""

    channel_message_ids: tuple[str, ...] = Field(description="The channel's ids of its parts.")
    form: str = Field(
        default="message",
        description="How it reached the customer: message (a free-form message) or, for a "
        "reply accepted after the dialog's messaging window closed, the channel's form for "
        "outside it: template (WhatsApp: the connector's template message).",
    )
    template: str | None = Field(
        default=None, description="form template: the template's name (and language)."
    )


class ReplyFailed(ReplyEvent):
    """A reply could not be delivered; ``reason`` says why."""

    reason: str = Field(description="send_failed (refused for good) or expired (TTL).")
    error: str = Field(description="The channel's own words.")
    form: str = Field(
        default="message",
        description="The form it was to go in: message, or the channel's form for outside "
        "the messaging window (template).",
    )


class ReplyQueued(ReplyEvent):
    """A reply waits for a provider's rate limit the engine keeps (Instagram's private
    replies an hour): stored, it goes out by itself at ``send_at``, in order, and then
    ``reply.sent`` (or ``reply.failed``) follows. Not sent when the wait is short."""

    send_at: float = Field(description="When it is due to go out (Unix seconds).")
    limit: str = Field(description="The provider's limit it waits for, in words.")


class ReplyUncertain(ReplyEvent):
    """A reply may or may not have reached the customer, and is not sent again.

    An attempt to send it started and its outcome was lost: the engine stopped while the
    channel's provider had the request. The channel cannot tell a repeat from a new message
    (Telegram, Viber), so sending it again could show it twice; the operator decides
    (look in the chat, or send it again as a new reply).
    """

    reason: UncertainReason = Field(
        description="interrupted: the engine stopped during the attempt, its answer lost."
    )
    attempts: int = Field(description="Attempts started; the outcome of the last is unknown.")
    error: str = Field(description="What is known, in words.")


EVENT_TYPES: dict[str, type[Frozen]] = {
    "message.received": InboundMessage,
    "message.edited": InboundMessage,
    "message.deleted": InboundMessage,
    "channel.event": ChannelEvent,
    "reply.sent": ReplySent,
    "reply.failed": ReplyFailed,
    "reply.uncertain": ReplyUncertain,
    "reply.queued": ReplyQueued,
    "dialog.queued": DialogQueued,
    "dialog.offered": DialogOffered,
    "dialog.offer_withdrawn": DialogOfferWithdrawn,
    "dialog.assigned": DialogAssigned,
    "dialog.answered": DialogAnswered,
    "dialog.returned": DialogReturned,
    "dialog.transferred": DialogTransferred,
    "dialog.closed": DialogClosed,
    "dialog.reopened": DialogReopened,
    "dialog.pinned": DialogPinned,
    "dialog.unpinned": DialogUnpinned,
    "dialog.participant_joined": DialogParticipantJoined,
    "dialog.participant_left": DialogParticipantLeft,
    "customer.unblocked": CustomerUnblocked,
    "dialog.held": DialogHeld,
    "dialog.handed_over": DialogHandedOver,
    "dialog.consent": DialogConsent,
    "dialog.rated": DialogRated,
    "dialog.kpi_exceeded": DialogKpiExceeded,
}
"""Every event type the engine delivers and the model of its ``data``."""

DIALOG_EVENT_TYPES: dict[type[Frozen], str] = {
    model: name
    for name, model in EVENT_TYPES.items()
    if name.startswith(("dialog.", "reply.", "customer."))
}
"""The type name of an engine-made event's model."""


def event_type(data: Frozen) -> str:
    return DIALOG_EVENT_TYPES[type(data)]
