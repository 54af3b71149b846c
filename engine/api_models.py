"""Bodies of the portal API's calls about operators and dialogs (the reply as stored and
sent is ``models.ReplyRequest``), and the engine key document the API answers with.

Refused whole when they do not validate (422 naming the field); unknown fields too.
"""

from __future__ import annotations

from typing import Annotated, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import (
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from engine.config import ID_PATTERN
from engine.models import AvatarUrl, Frozen, OutboundContent
from engine.security.keys import ed25519_public_to_b64
from engine.stats.figures import Selection
from engine.stats.period import Bucket, check_range, parse_instant

OperatorId = Field(pattern=ID_PATTERN, description="An operator's id in the portal.")


class OperatorStatusRequest(Frozen):
    """``PUT /api/v1/operators/{operator_id}/status``: presence and work day."""

    status: Literal["online", "away", "offline", "vacation"] | None = Field(
        default=None, description="Presence; only online operators get new dialogs."
    )
    work_day: Literal["started", "ended"] | None = Field(
        default=None, description="Starting or ending the work day."
    )

    @model_validator(mode="after")
    def _something(self) -> OperatorStatusRequest:
        if self.status is None and self.work_day is None:
            raise ValueError("give status, work_day or both")
        return self


class OperatorAction(Frozen):
    """``POST /api/v1/dialogs/{dialog_id}/accept`` and ``/skip``: who acts."""

    operator_id: str = OperatorId


class FinishRequest(Frozen):
    """``POST /api/v1/dialogs/{dialog_id}/finish``."""

    operator_id: str | None = Field(
        default=None, pattern=ID_PATTERN, description="Who finished it, for the record."
    )


class ResponsibleRequest(Frozen):
    """``PUT .../customers/{connector_id}/{customer_id}/responsible``: CRM ownership."""

    operator_id: str | None = Field(
        pattern=ID_PATTERN, description="The responsible operator; null removes it."
    )


class EngineKeyDocument(Frozen):
    """``GET /api/v1/engine-key``: the key portals verify deliveries with (docs/protocol.md,
    "Engine public key"). Public, so served without a signature."""

    algorithm: Literal["Ed25519"] = Field(description="The signature scheme of v1a.")
    public_key: str = Field(
        pattern=r"^[A-Za-z0-9_-]{43}$",
        description="The raw 32-byte public key, base64url without padding.",
    )

    @classmethod
    def for_key(cls, public_key: Ed25519PublicKey) -> EngineKeyDocument:
        return cls(algorithm="Ed25519", public_key=ed25519_public_to_b64(public_key))


# -- replies -----------------------------------------------------------------------------------


class ReplyBody(Frozen):
    """``POST /api/v1/dialogs/{dialog_id}/messages``: an operator's reply, its content given
    or taken from a quick answer of the dialog's line (exactly one of the two)."""

    content: OutboundContent | None = Field(default=None, description="What to send.")
    quick_answer_id: str | None = Field(
        default=None, max_length=200, description="A quick answer of the dialog's line to send."
    )
    reply_to_channel_message_id: str | None = None
    client_id: str | None = Field(
        default=None, max_length=200, description="The portal's own id, echoed in the outcome."
    )
    operator_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="The replying operator; the assigned one's first reply answers the dialog.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ReplyBody:
        if (self.content is None) == (self.quick_answer_id is None):
            raise ValueError("give exactly one of content or quick_answer_id")
        return self


# -- the operator's workflow: one model per call, path parameters included --------------------
#
# The HTTP layer fills path and query parameters in beside the JSON body (a body naming a
# path parameter is refused); ``engine.routing.operator_calls`` carries the call out.


class DialogCall(Frozen):
    dialog_id: str = Field(max_length=200, description="The dialog, from the path.")


class DeclineCall(DialogCall):
    """``POST /api/v1/dialogs/{dialog_id}/decline``: close it as refused or spam."""

    operator_id: str | None = Field(default=None, pattern=ID_PATTERN, description="Who declines.")
    reason: Literal["refused", "spam"] = Field(description="refused, or spam.")
    customer_text: str | None = Field(
        default=None, min_length=1, max_length=4096, description="Told to the customer, if set."
    )
    block: bool = Field(default=False, description="Spam only: the customer opens no more dialogs.")

    @model_validator(mode="after")
    def _block_is_for_spam(self) -> DeclineCall:
        if self.block and self.reason != "spam":
            raise ValueError("block needs reason spam")
        return self


class PinCall(DialogCall):
    """``POST /api/v1/dialogs/{dialog_id}/pin``: keep it with its operator."""

    operator_id: str | None = Field(default=None, pattern=ID_PATTERN, description="Who pins.")


class UnpinCall(DialogCall):
    """``POST /api/v1/dialogs/{dialog_id}/unpin``: the line's rules apply again."""

    operator_id: str | None = Field(default=None, pattern=ID_PATTERN, description="Who unpins.")


class TransferCall(DialogCall):
    """``POST /api/v1/dialogs/{dialog_id}/transfer``: to an operator or to another line."""

    operator_id: str | None = Field(
        default=None, pattern=ID_PATTERN, description="Who transfers it."
    )
    to_operator_id: str | None = Field(
        default=None, pattern=ID_PATTERN, description="The operator who gets it, on its line."
    )
    to_line_id: str | None = Field(
        default=None, pattern=ID_PATTERN, description="The line whose queue it joins."
    )
    responsible_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="Also make this operator the customer's responsible (null: unchanged).",
    )

    @model_validator(mode="after")
    def _one_target(self) -> TransferCall:
        if (self.to_operator_id is None) == (self.to_line_id is None):
            raise ValueError("give exactly one of to_operator_id or to_line_id")
        return self


class InviteCall(DialogCall):
    """``POST /api/v1/dialogs/{dialog_id}/invite``: another operator joins and may reply."""

    operator_id: str | None = Field(default=None, pattern=ID_PATTERN, description="Who invites.")
    invitee_id: str = Field(pattern=ID_PATTERN, description="The operator invited.")


class JoinCall(DialogCall):
    """``POST /api/v1/dialogs/{dialog_id}/join``: a supervisor joins silently."""

    operator_id: str = Field(pattern=ID_PATTERN, description="The supervisor.")


class LeaveCall(DialogCall):
    """``POST /api/v1/dialogs/{dialog_id}/leave``: a participant leaves."""

    operator_id: str = Field(pattern=ID_PATTERN, description="The participant who leaves.")


class HistoryCall(DialogCall):
    """``GET /api/v1/dialogs/{dialog_id}/history?limit=&after=``."""

    limit: int = Field(default=50, ge=1, le=500, description="Events per page.")
    after: str | None = Field(
        default=None, max_length=200, description="The last event id of the previous page."
    )


class OperatorDialogsCall(Frozen):
    """``GET /api/v1/operators/{operator_id}/dialogs``."""

    operator_id: str = Field(pattern=ID_PATTERN, description="The operator, from the path.")


class OperatorProfileCall(Frozen):
    """``PUT /api/v1/operators/{operator_id}/profile``: what customers see of them."""

    operator_id: str = Field(pattern=ID_PATTERN, description="The operator, from the path.")
    display_name: str | None = Field(
        min_length=1, max_length=100, description="Shown with their replies; null: none."
    )
    avatar_url: AvatarUrl | None = Field(
        default=None,
        description="An https picture shown beside their replies where the channel shows a "
        "sender (the widget); absent or null: none. The call sets the whole profile.",
    )


class LineQueueCall(Frozen):
    """``GET /api/v1/lines/{line_id}/queue``."""

    line_id: str = Field(pattern=ID_PATTERN, description="The line, from the path.")


class QuickAnswersCall(Frozen):
    """``GET /api/v1/lines/{line_id}/quick-answers``."""

    line_id: str = Field(pattern=ID_PATTERN, description="The line, from the path.")


class QuickAnswerText(Frozen):
    title: str = Field(min_length=1, max_length=200, description="What operators pick it by.")
    text: str = Field(
        min_length=1,
        max_length=4096,
        description="Sent to the customer; {customer_name}, {operator_name}, {line_name}.",
    )


class CreateQuickAnswerCall(QuickAnswerText):
    """``POST /api/v1/lines/{line_id}/quick-answers``."""

    line_id: str = Field(pattern=ID_PATTERN, description="The line, from the path.")


class UpdateQuickAnswerCall(QuickAnswerText):
    """``PUT /api/v1/quick-answers/{answer_id}``."""

    answer_id: str = Field(max_length=200, description="The quick answer, from the path.")


class DeleteQuickAnswerCall(Frozen):
    """``DELETE /api/v1/quick-answers/{answer_id}``."""

    answer_id: str = Field(max_length=200, description="The quick answer, from the path.")


class UnblockCall(Frozen):
    """``DELETE /api/v1/customers/{connector_id}/{customer_id}/block?operator_id=``."""

    connector_id: str = Field(pattern=ID_PATTERN, description="From the path.")
    customer_id: str = Field(max_length=200, description="From the path.")
    operator_id: str | None = Field(default=None, pattern=ID_PATTERN, description="Who unblocks.")


Instant = Annotated[
    float,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "format": "date"},
                {"type": "string", "format": "date-time"},
            ]
        }
    ),
]
"""A time as the API takes it (``engine.stats.period.parse_instant``), Unix seconds within."""


class StatsCall(Frozen):
    """``GET /api/v1/stats?from=&to=&line_id=&operator_id=&bucket=``: the figures of a
    time range, for the portal, one line and/or one operator (docs/statistics.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    start: Instant = Field(
        alias="from", description="Start of the range, included: Unix seconds or ISO 8601."
    )
    end: Instant = Field(
        alias="to", description="End of the range, excluded: Unix seconds or ISO 8601."
    )
    line_id: str | None = Field(default=None, pattern=ID_PATTERN, description="Only this line.")
    operator_id: str | None = Field(
        default=None, pattern=ID_PATTERN, description="Only this operator."
    )
    bucket: Bucket = Field(default="day", description="Width of the load series' buckets.")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _instant(cls, value: object) -> object:
        return parse_instant(value) if isinstance(value, str) else value

    @field_validator("end")
    @classmethod
    def _after_start(cls, end: float, info: ValidationInfo) -> float:
        start = info.data.get("start")
        if start is not None:
            check_range(start, end)
        return end

    def selection(self) -> Selection:
        return Selection(self.start, self.end, self.line_id, self.operator_id, self.bucket)


PortalCall = (
    DeclineCall
    | PinCall
    | UnpinCall
    | TransferCall
    | InviteCall
    | JoinCall
    | LeaveCall
    | HistoryCall
    | OperatorDialogsCall
    | OperatorProfileCall
    | LineQueueCall
    | QuickAnswersCall
    | CreateQuickAnswerCall
    | UpdateQuickAnswerCall
    | DeleteQuickAnswerCall
    | UnblockCall
    | StatsCall
)
"""Every call of the operator's workflow (``engine.routing.operator_calls``)."""


class MediaLinkBody(Frozen):
    """``POST /api/v1/media-links``: a link to a file a customer sent (docs/channels/media.md)."""

    connector_id: str = Field(pattern=ID_PATTERN, description="The connector it came through.")
    file_id: str = Field(
        min_length=1, max_length=1024, description="The message's ``file.file_id``."
    )
