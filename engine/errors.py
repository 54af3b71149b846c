"""The engine's errors: one root, a shallow tree shaped by what the caller can do.

Every exception keeps its constructor arguments in ``args`` so it pickles across Ray actors.
"""

from __future__ import annotations

from typing import ClassVar


class EngineError(Exception):
    """Root of every error the engine raises on purpose."""

    http_status = 500
    reason = "internal_error"

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else self.reason

    def details(self) -> dict[str, object]:
        """Facts beside ``error`` and ``message`` in the refusal's body (none by default)."""
        return {}


class ConfigError(EngineError):
    """Configuration or rules that do not validate; the message names file, line and field."""

    http_status = 422
    reason = "invalid_config"


class AuthError(EngineError):
    """A request whose sender could not be proven: missing or wrong secret or signature."""

    http_status = 401
    reason = "bad_signature"


class ForbiddenError(EngineError):
    """An authenticated caller asked for something that is not its own."""

    http_status = 403
    reason = "forbidden"


class NotFoundError(EngineError):
    """An unknown channel, connector, portal or dialog."""

    http_status = 404
    reason = "not_found"


class MediaLinkError(EngineError):
    """A media link that cannot be served (docs/channels/media.md): ``code`` says why
    (``bad_link`` 404, ``link_expired`` 410, ``file_gone`` 404, ``too_large`` 413,
    ``provider_failed`` 502, ``not_fetchable`` 422)."""

    _STATUSES: ClassVar[dict[str, int]] = {
        "bad_link": 404,
        "file_gone": 404,
        "link_expired": 410,
        "too_large": 413,
        "not_fetchable": 422,
        "provider_failed": 502,
    }

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, code)
        self.reason = code
        self.http_status = self._STATUSES[code]


class ConflictError(EngineError):
    """A request that makes no sense in the current state: an offer already taken or
    withdrawn, accepting at capacity, answering a closed dialog.

    ``code`` names the conflict for the caller (``dialog_closed``, ``already_pinned``, ...;
    docs/routing.md lists them); without one it is ``conflict``.
    """

    http_status = 409
    reason = "conflict"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message, code)
        if code is not None:
            self.reason = code


class WindowClosedError(ConflictError):
    """A reply outside the channel's messaging window: the customer must write first."""

    def __init__(self, message: str, closed_at: float) -> None:
        super().__init__(message, "window_closed")
        self.args = (message, closed_at)

    @property
    def closed_at(self) -> float:
        return float(self.args[1])

    def details(self) -> dict[str, object]:
        return {"closed_at": self.closed_at}


class RateLimitedError(EngineError):
    """A caller over its rate limit (a widget visitor or an address): wait ``retry_after_s``."""

    http_status = 429
    reason = "rate_limited"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message, retry_after_s)

    @property
    def retry_after_s(self) -> float:
        return float(self.args[1])

    def details(self) -> dict[str, object]:
        return {"retry_after_s": self.retry_after_s}


class BadRequestError(EngineError):
    """A body that is not what the endpoint reads: malformed JSON, wrong content type."""

    http_status = 400
    reason = "bad_request"


class MethodNotAllowedError(EngineError):
    """A method the endpoint does not answer: a GET on the webhook of a channel without a
    handshake (docs/channels/contract.md)."""

    http_status = 405
    reason = "method_not_allowed"


class UnsupportedMediaTypeError(EngineError):
    """A body in a content type the endpoint does not read."""

    http_status = 415
    reason = "unsupported_media_type"


class ValidationFailedError(EngineError):
    """A well-formed body whose content does not validate against the expected model."""

    http_status = 422
    reason = "invalid_payload"


class ProviderSetupError(EngineError):
    """A provider refused a connect or disconnect call (a wrong token, a missing permission,
    a webhook it could not reach), or could not be reached; the message says which and what
    to do (docs/channels/contract.md, "Connecting")."""

    http_status = 422
    reason = "provider_refused"


class UnavailableError(EngineError):
    """The engine cannot take the request now (shutting down, a part restarting); retry."""

    http_status = 503
    reason = "unavailable"


class PartFailedError(EngineError):
    """A part of the engine failed on a request by its own fault (a bug there): a retry
    would only repeat it, so the caller gets a 500, not a 503."""

    http_status = 500
    reason = "internal_error"


class ChannelError(EngineError):
    """A channel's provider refused or failed an outbound call."""

    reason = "channel_error"


class RetryableSendError(ChannelError):
    """The send may succeed later; ``retry_after_s`` is the provider's own hint, if it gave one."""

    reason = "send_retryable"

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message, retry_after_s)

    @property
    def retry_after_s(self) -> float | None:
        value = self.args[1]
        return None if value is None else float(value)


class PermanentSendError(ChannelError):
    """The send will never succeed as it is (blocked by the user, chat gone, bad token)."""

    reason = "send_failed"
