"""What the engine does when one of its actors is down: restart options, and how callers
tell "a part is restarting, retry" from a bug.

Ray facts this relies on (Ray 2.60, measured here):

- With ``max_restarts=-1`` a killed actor is started again in a new process; only its
  ``__init__`` runs. Named handles stay valid: callers keep theirs.
- A call in flight when the process dies raises ``ActorUnavailableError`` ("may or may not
  have been executed"); a call made while Ray knows the actor is restarting waits for the new
  process. With ``max_task_retries`` (per actor, or per method with ``ray.method``) Ray
  repeats a call that failed by the actor's death on the new process instead.
- After a kill without restart a call raises ``ActorDiedError``; both are ``RayActorError``.
- An actor that is not detached dies with the process that created it, restarts or not.
"""

from __future__ import annotations

import warnings
from typing import Any

import ray

from engine.errors import UnavailableError

RESTARTS: dict[str, Any] = {"max_restarts": -1, "max_task_retries": 0}
"""Every actor restarts for ever; no call is repeated unless its method says so
(``docs/architecture.md``, Faults)."""


def restarted() -> bool:
    """True in an actor whose process Ray started again after a crash (its ``__init__`` runs
    once more, and nothing else does)."""
    with warnings.catch_warnings():
        # Ray 2.60 implements the flag with its own deprecated ``actor_id``: the warning is
        # Ray's, about Ray, and would land in every restarted actor's log.
        warnings.simplefilter("ignore", DeprecationWarning)
        return bool(ray.get_runtime_context().was_current_actor_reconstructed)


def unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means a part of the engine is down or restarting (retry later),
    False for an error a retry would only repeat (an actor's own bug)."""
    if isinstance(exc, UnavailableError):  # already translated (``actors.remote``)
        return True
    if isinstance(exc, ray.exceptions.RayTaskError):
        return isinstance(getattr(exc, "cause", None), ray.exceptions.RayActorError)
    return isinstance(exc, TimeoutError | ray.exceptions.RayError)


def reason(exc: BaseException) -> str:
    """One short line for a log or a health answer (Ray's own messages run to pages)."""
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    line = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return line if len(line) <= 160 else line[:157] + "..."
