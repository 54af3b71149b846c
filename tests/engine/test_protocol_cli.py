"""``openlines protocol schema|vectors``: print, write and check the generated files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engine.cli import main
from engine.protocol.schema import render_schema
from engine.protocol.vectors import render_vectors
from tests.engine.protocol_kit import PUBLISHED_SCHEMA, PUBLISHED_VECTORS


@pytest.mark.parametrize(
    ("what", "render"), [("schema", render_schema), ("vectors", render_vectors)]
)
def test_write_then_check_then_a_changed_file_fails_the_check(
    what: str, render: Callable[[], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "docs" / f"{what}.json"
    assert main(["protocol", what, "--check", "--path", str(path)]) == 1  # not written yet
    assert main(["protocol", what, "--write", "--path", str(path)]) == 0
    assert path.read_text(encoding="utf-8") == render()
    assert main(["protocol", what, "--check", "--path", str(path)]) == 0
    path.write_text(path.read_text(encoding="utf-8").replace('"', "'", 1), encoding="utf-8")
    capsys.readouterr()
    assert main(["protocol", what, "--check", "--path", str(path)]) == 1
    assert f"run openlines protocol {what} --write" in capsys.readouterr().err


def test_without_an_option_the_file_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["protocol", "schema"]) == 0
    assert capsys.readouterr().out == PUBLISHED_SCHEMA.read_text(encoding="utf-8")
    assert main(["protocol", "vectors"]) == 0
    assert capsys.readouterr().out == PUBLISHED_VECTORS.read_text(encoding="utf-8")


def test_write_and_check_do_not_go_together(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["protocol", "schema", "--write", "--check"])
    assert "not allowed with argument" in capsys.readouterr().err
