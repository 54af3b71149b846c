"""``openlines rules check`` and ``rules simulate``: rule files tried without an engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main

LINE = """\
portal: demo
line: support
queue:
  members: [{operator: anna}, {operator: boris}]
  distribution: strictly
timers:
  accept_timeout_s: 60
"""

TRAFFIC = """\
{"at": 0, "event": "status", "operator": "anna", "status": "online"}
{"at": 0, "event": "status", "operator": "boris", "status": "online"}
{"at": 5, "event": "message", "chat": "42"}
{"at": 100, "event": "accept", "chat": "42", "operator": "boris"}
{"at": 101, "event": "accept", "chat": "42", "operator": "anna"}
{"at": 110, "event": "finish", "chat": "42", "operator": "boris"}
"""


@pytest.fixture
def line_file(tmp_path: Path) -> Path:
    path = tmp_path / "support.yaml"
    path.write_text(LINE)
    return path


def test_check_accepts_a_valid_file_and_folder(
    line_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rules", "check", str(line_file)]) == 0
    assert main(["rules", "check", str(line_file.parent)]) == 0
    out = capsys.readouterr().out
    assert "line demo/support valid" in out
    assert "1 line(s) valid: demo/support" in out


def test_check_fails_with_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(LINE.replace("strictly", "randomly"))

    assert main(["rules", "check", str(bad)]) == 2
    assert main(["rules", "check", str(tmp_path / "missing.yaml")]) == 2

    err = capsys.readouterr().err
    assert f"{bad}:5: queue.distribution: Input should be 'evenly', 'strictly' or 'all'" in err
    assert "missing.yaml: no such rules file or folder" in err


def test_simulate_prints_offers_timeouts_decisions_and_refusals(
    line_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text(TRAFFIC)

    assert main(["rules", "simulate", str(line_file), str(traffic), "--tail-s", "0"]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out == [
        "+     5.0s chat 42 dlg_1 [waiting] dialog.queued reason=new, position=1",
        "+     5.0s chat 42 dlg_1 [offered] dialog.offered operator_ids=['anna'], "
        "accept_timeout_s=60.0",
        "             why: chosen ['anna']; skipped boris: not_next",
        "+     5.0s chat 42 dlg_1 [offered] message.received",
        "+    65.0s chat 42 dlg_1 [waiting] dialog.offer_withdrawn operator_ids=['anna'], "
        "reason=expired",
        "+    65.0s chat 42 dlg_1 [offered] dialog.offered operator_ids=['boris'], "
        "accept_timeout_s=60.0",
        "             why: chosen ['boris']; skipped anna: already_tried",
        "+   100.0s chat 42 dlg_1 [assigned] dialog.assigned operator_id=boris, via=accept",
        "+   101.0s refused accept: dialog 'dlg_1' has no open offer to 'anna': "
        "it is assigned to 'boris'",
        "+   110.0s chat 42 dlg_1 [closed] dialog.closed reason=finished, operator_id=boris, "
        "closed_by=boris",
    ]


def test_simulate_with_a_portal_that_sees_offers_late_starts_timers_late(
    line_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text(TRAFFIC.splitlines()[0] + "\n" + TRAFFIC.splitlines()[2] + "\n")

    args = ["rules", "simulate", str(line_file), str(traffic), "--portal-delay-s", "600"]
    assert main([*args, "--tail-s", "659"]) == 0
    assert "expired" not in capsys.readouterr().out
    assert main([*args, "--tail-s", "660"]) == 0
    assert "+   665.0s chat 42 dlg_1 [waiting] dialog.offer_withdrawn" in capsys.readouterr().out


def test_simulate_refuses_bad_traffic_naming_each_line(
    line_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text(
        '{"at": 0, "event": "message", "chat": "1"}\n'
        "not json\n"
        '{"at": 1, "event": "status", "operator": "a b"}\n'
        '{"at": 2, "event": "teleport", "chat": "1"}\n'
    )

    assert main(["rules", "simulate", str(line_file), str(traffic)]) == 2

    err = capsys.readouterr().err
    assert f"{traffic}:2: not JSON" in err
    assert f"{traffic}:3: status.operator: String should match pattern" in err
    assert f"{traffic}:4: body: Input tag 'teleport' found using 'event' does not match" in err
    assert main(["rules", "simulate", str(line_file), str(traffic.parent / "nope.jsonl")]) == 2
    assert main(["rules", "simulate", str(line_file), str(traffic), "--start", "noon"]) == 2
