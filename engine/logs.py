"""Structured logs: one JSON object per line, for the driver and every actor.

Fields passed with ``extra={...}`` (portal, channel, batch ids) become keys of their own, so
logs can be filtered by portal without parsing messages.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

LOG_FORMAT_ENV = "OPENLINES_LOG_FORMAT"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class ParserErrorsInOneLine(logging.Filter):
    """aiohttp logs a request its parser refuses (bad header, over-long line, garbage) as an
    error with a traceback; it is a client's mistake, already answered 400: one warning line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and type(exc).__module__ == "aiohttp.http_exceptions":
            detail = " ".join(str(exc).split())
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {detail[:300]}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines by default; ``OPENLINES_LOG_FORMAT=text`` for a human-readable console."""
    handler = logging.StreamHandler()
    if os.environ.get(LOG_FORMAT_ENV, "json") == "text":
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ParserErrorsInOneLine) for f in server.filters):
        server.addFilter(ParserErrorsInOneLine())


def say(line: str) -> None:
    """A status line of the engine's (``openlines: ready``) on stdout in one write: worker
    logs are forwarded to the same stdout, and ``print`` writes text and newline
    separately, so a log line could land between."""
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()
