"""An actor handle that is called like a local object: what ``engine.web``'s handlers and
the hand-off see of the other actors.

``await Remote(handle).reply(...)`` calls ``handle.reply.remote(...)`` and translates what
Ray raises into the engine's own errors, so no code outside ``actors/`` knows Ray:

- the actor's own ``EngineError`` (a 404, a 409...) is raised as it is;
- a part that is down or restarting is an ``UnavailableError`` (503, retry);
- any other failure in an actor is a ``PartFailedError`` (500): a retry would repeat it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import ray

from actors.faults import reason, unavailable
from actors.names import REGISTRY_CARRIER, REGISTRY_HOST
from engine.errors import EngineError, PartFailedError, UnavailableError
from engine.registry_host import REGISTRY_CALLS, RegistryHost
from engine.store.records import OutboxRecord, pack_records

log = logging.getLogger(__name__)


def cause_of(exc: BaseException) -> BaseException:
    """The exception an actor raised, unwrapped from Ray's ``RayTaskError``."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


async def call(ref: Any) -> Any:
    """Await an actor call, with Ray's errors translated (see the module docstring)."""
    try:
        return await ref
    except ray.exceptions.RayError as exc:
        cause = cause_of(exc)
        if isinstance(cause, EngineError):
            raise cause from None
        why = reason(exc)
        if unavailable(exc):
            raise UnavailableError(f"engine part unavailable, retry: {why}") from None
        log.error("an actor failed: %s", why)
        raise PartFailedError(f"internal error in an actor: {why}") from None


class Remote:
    """A named actor's methods as coroutines (see the module docstring). Calls named in
    ``carried`` go through the actor's one carrier method ``via`` (``api(name, *args)``)
    rather than a method of their own: the actor need not repeat every call it carries."""

    def __init__(
        self, handle: Any, carried: frozenset[str] = frozenset(), via: str = "api"
    ) -> None:
        self.handle = handle
        self._carried = carried
        self._via = via

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name.startswith("_"):
            raise AttributeError(name)
        carried = name in self._carried
        method = getattr(self.handle, self._via if carried else name)
        prefix = (name,) if carried else ()

        async def invoke(*args: Any) -> Any:
            return await call(method.remote(*prefix, *args))

        invoke.__name__ = name
        setattr(self, name, invoke)  # the next call finds it without __getattr__
        return invoke


class PortalRemote(Remote):
    """A portal actor (``actors.portal``): its API's calls carried through ``api``, and the
    records a channel actor hands over packed into one bytes object (``pack_records``),
    which Ray serializes for a fraction of what the list's items would cost it one by one."""

    async def append(
        self, records: list[OutboxRecord], source: int, watermark: float
    ) -> list[bool]:
        accepted: list[bool] = await call(
            self.handle.append.remote(pack_records(records), source, watermark)
        )
        return accepted


def remote_registry(namespace: str) -> RegistryHost:
    """The registry as a process other than its host calls it: the host's carrier method,
    by name (``actors.names.REGISTRY_HOST``)."""
    handle = ray.get_actor(REGISTRY_HOST, namespace=namespace)
    return cast(RegistryHost, Remote(handle, REGISTRY_CALLS, via=REGISTRY_CARRIER))
