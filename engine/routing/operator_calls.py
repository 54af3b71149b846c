"""The portal API's calls of the operator's workflow, carried out on the portal's router.

The HTTP layer parses a request into one of ``engine.api_models.PortalCall`` and hands it to
the portal's own actor, which calls ``operate``: every call becomes one router step (or a
read of its board and store) and answers with a status and a JSON body, ready to send.
docs/routing.md, "The operator API", is the reference.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from engine.api_models import (
    CreateQuickAnswerCall,
    DeclineCall,
    DeleteQuickAnswerCall,
    HistoryCall,
    InviteCall,
    JoinCall,
    LeaveCall,
    LineQueueCall,
    OperatorDialogsCall,
    OperatorProfileCall,
    PinCall,
    PortalCall,
    QuickAnswersCall,
    StatsCall,
    TransferCall,
    UnblockCall,
    UnpinCall,
    UpdateQuickAnswerCall,
)
from engine.routing.portal_router import PortalRouter
from engine.routing.state import DialogState

Answer = tuple[int, bytes]
"""The HTTP status and the JSON body."""


async def operate(router: PortalRouter, call: PortalCall) -> Answer:
    """Carry the call out; refusals are ``EngineError`` with their 4xx and reason."""
    carry_out: Callable[[PortalRouter, Any], Awaitable[Answer]] = _CALLS[type(call)]
    return await carry_out(router, call)


def _ok(body: object, status: int = 200) -> Answer:
    return status, orjson.dumps(body)


def _view(dialog: DialogState) -> dict[str, Any]:
    return dialog.view().model_dump(mode="json")


async def _decline(router: PortalRouter, call: DeclineCall) -> Answer:
    dialog = await router.decline(
        call.dialog_id, call.operator_id, call.reason == "spam", call.customer_text, call.block
    )
    return _ok(_view(dialog))


async def _pin(router: PortalRouter, call: PinCall) -> Answer:
    return _ok(_view(await router.pin(call.dialog_id, call.operator_id)))


async def _unpin(router: PortalRouter, call: UnpinCall) -> Answer:
    return _ok(_view(await router.unpin(call.dialog_id, call.operator_id)))


async def _transfer(router: PortalRouter, call: TransferCall) -> Answer:
    dialog = await router.transfer(
        call.dialog_id, call.operator_id, call.to_operator_id, call.to_line_id, call.responsible_id
    )
    return _ok(_view(dialog))


async def _invite(router: PortalRouter, call: InviteCall) -> Answer:
    return _ok(_view(await router.invite(call.dialog_id, call.invitee_id, call.operator_id)))


async def _join(router: PortalRouter, call: JoinCall) -> Answer:
    return _ok(_view(await router.join(call.dialog_id, call.operator_id)))


async def _leave(router: PortalRouter, call: LeaveCall) -> Answer:
    return _ok(_view(await router.leave(call.dialog_id, call.operator_id)))


async def _history(router: PortalRouter, call: HistoryCall) -> Answer:
    dialog, events = await router.history(call.dialog_id, call.limit, call.after)
    return _ok(
        {
            "dialog": _view(dialog),
            "events": [event.as_json() for event in events],
            "next_after": events[-1].event_id if len(events) == call.limit else None,
        }
    )


async def _operator_dialogs(router: PortalRouter, call: OperatorDialogsCall) -> Answer:
    found = router.operator_dialogs(call.operator_id)
    return _ok(
        {
            "operator_id": call.operator_id,
            "dialogs": [{"role": role, "dialog": _view(dialog)} for role, dialog in found],
        }
    )


async def _operator_profile(router: PortalRouter, call: OperatorProfileCall) -> Answer:
    operator = await router.set_profile(call.operator_id, call.display_name, call.avatar_url)
    return _ok(
        {
            "operator_id": operator.operator_id,
            "display_name": operator.display_name,
            "avatar_url": operator.avatar_url,
        }
    )


async def _line_queue(router: PortalRouter, call: LineQueueCall) -> Answer:
    waiting = router.line_queue(call.line_id)
    return _ok(
        {
            "line_id": call.line_id,
            "waiting": [
                {
                    "position": position,
                    "queued_at": dialog.queued_at,
                    "waiting_since": dialog.waiting_since,
                    "dialog": _view(dialog),
                }
                for position, dialog in enumerate(waiting, start=1)
            ],
        }
    )


async def _quick_answers(router: PortalRouter, call: QuickAnswersCall) -> Answer:
    answers = await router.quick_answers.of_line(call.line_id)
    return _ok({"line_id": call.line_id, "quick_answers": [a.as_json() for a in answers]})


async def _create_quick_answer(router: PortalRouter, call: CreateQuickAnswerCall) -> Answer:
    answer = await router.quick_answers.create(call.line_id, call.title, call.text)
    return _ok(answer.as_json(), 201)


async def _update_quick_answer(router: PortalRouter, call: UpdateQuickAnswerCall) -> Answer:
    answer = await router.quick_answers.update(call.answer_id, call.title, call.text)
    return _ok(answer.as_json())


async def _delete_quick_answer(router: PortalRouter, call: DeleteQuickAnswerCall) -> Answer:
    return _ok((await router.quick_answers.delete(call.answer_id)).as_json())


async def _unblock(router: PortalRouter, call: UnblockCall) -> Answer:
    block = await router.unblock(call.connector_id, call.customer_id, call.operator_id)
    return _ok(
        {
            "connector_id": call.connector_id,
            "customer_id": call.customer_id,
            "dialog_id": block.dialog_id,
            "blocked_at": block.blocked_at,
            "blocked_by": block.blocked_by,
            "messages": block.messages,
        }
    )


async def _stats(router: PortalRouter, call: StatsCall) -> Answer:
    return _ok(await router.statistics.report(call.selection()))


_CALLS: dict[type[Any], Callable[[PortalRouter, Any], Awaitable[Answer]]] = {
    DeclineCall: _decline,
    PinCall: _pin,
    UnpinCall: _unpin,
    TransferCall: _transfer,
    InviteCall: _invite,
    JoinCall: _join,
    LeaveCall: _leave,
    HistoryCall: _history,
    OperatorDialogsCall: _operator_dialogs,
    OperatorProfileCall: _operator_profile,
    LineQueueCall: _line_queue,
    QuickAnswersCall: _quick_answers,
    CreateQuickAnswerCall: _create_quick_answer,
    UpdateQuickAnswerCall: _update_quick_answer,
    DeleteQuickAnswerCall: _delete_quick_answer,
    UnblockCall: _unblock,
    StatsCall: _stats,
}
