"""Pydantic validation errors as one line a caller can act on.

Every 422 the engine answers (webhooks, portal API, admin API) and every refused provider
payload describes its problems the same way: ``path.to.field: what was wrong``, joined by
``; ``. Only the first few are spelled out, so a batch of a thousand broken messages does
not produce a megabyte of error text.
"""

from __future__ import annotations

from pydantic import ValidationError

MAX_DESCRIBED_ERRORS = 3


def describe_validation_error(exc: ValidationError, *, prefix: str | None = None) -> str:
    """``messages.0.chat_id: Field required; ...``, the first few problems, then a count.

    ``prefix`` names the validated value when the caller checked only part of a document
    (Telegram's ``update`` or ``message``); without it, an error at the top is ``body``.
    """
    described = [
        f"{_path(prefix, error['loc'])}: {error['msg']}" for error in exc.errors(include_url=False)
    ]
    shown = "; ".join(described[:MAX_DESCRIBED_ERRORS])
    hidden = len(described) - MAX_DESCRIBED_ERRORS
    return f"{shown} (and {hidden} more)" if hidden > 0 else shown


def _path(prefix: str | None, loc: tuple[int | str, ...]) -> str:
    parts = [prefix, *(str(part) for part in loc)] if prefix else [str(part) for part in loc]
    return ".".join(parts) or "body"
