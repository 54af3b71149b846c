"""Log lines: a request aiohttp's parser refuses is one warning line, not a traceback."""

from __future__ import annotations

import logging

import pytest
from aiohttp.http_exceptions import LineTooLong

from engine.logs import JsonFormatter, ParserErrorsInOneLine


def record_of(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException as caught:
        return logging.LogRecord(
            "aiohttp.server",
            logging.ERROR,
            __file__,
            1,
            "Error handling request from %s",
            ("127.0.0.1",),
            (type(caught), caught, caught.__traceback__),
        )


def test_a_parser_error_becomes_one_warning_line() -> None:
    record = record_of(LineTooLong("a" * 20_000, "8190"))

    assert ParserErrorsInOneLine().filter(record)

    assert record.levelname == "WARNING" and record.exc_info is None
    line = JsonFormatter().format(record)
    assert "\n" not in line and "Traceback" not in line
    assert "Error handling request from 127.0.0.1: LineTooLong" in line
    assert len(line) < 1000


def test_other_errors_keep_their_traceback() -> None:
    record = record_of(ValueError("a bug"))

    assert ParserErrorsInOneLine().filter(record)

    assert record.levelname == "ERROR" and record.exc_info is not None
    assert "Traceback" in JsonFormatter().format(record)


@pytest.mark.parametrize("name", ["aiohttp.server"])
def test_configure_logging_installs_the_filter_once(name: str) -> None:
    from engine.logs import configure_logging

    configure_logging()
    configure_logging()
    filters = [f for f in logging.getLogger(name).filters if isinstance(f, ParserErrorsInOneLine)]
    assert len(filters) == 1
