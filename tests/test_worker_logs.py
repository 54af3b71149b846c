"""The driver's tail of the actors' output files (actors/worker_logs.py), without Ray."""

from __future__ import annotations

import io
from pathlib import Path

from actors.worker_logs import WorkerLogForwarder

OUT = "worker-d81bccf9b23c-ffffffff-20415.out"
ERR = "worker-d81bccf9b23c-ffffffff-20415.err"


def forwarder(logs: Path) -> tuple[WorkerLogForwarder, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return WorkerLogForwarder(logs, stdout=out, stderr=err), out, err


def test_markers_name_the_lines_json_passes_through_and_streams_stay_apart(
    tmp_path: Path,
) -> None:
    (tmp_path / OUT).write_text(":job_id:01000000\n:actor_name:ChannelActor\nprinted\n")
    (tmp_path / ERR).write_text(
        ':job_id:01000000\n:actor_name:ChannelActor\n{"level": "info", "msg": "listening"}\n'
    )
    (tmp_path / "raylet.out").write_text("the raylet's own log, not a worker's\n")
    logs, out, err = forwarder(tmp_path)
    logs.forward_new_lines()
    assert out.getvalue() == "(ChannelActor pid=20415) printed\n"
    assert err.getvalue() == '{"level": "info", "msg": "listening"}\n'


def test_a_line_is_forwarded_once_and_only_when_complete(tmp_path: Path) -> None:
    path = tmp_path / OUT
    path.write_text(":job_id:01000000\n:task_name:warm_up\nfirst\nsec")
    logs, out, _ = forwarder(tmp_path)
    logs.forward_new_lines()
    logs.forward_new_lines()
    assert out.getvalue() == "(warm_up pid=20415) first\n"
    with path.open("a") as file:
        file.write("ond\n:actor_name:PortalActor\nthird\n")
    logs.forward_new_lines()
    assert out.getvalue().splitlines() == [
        "(warm_up pid=20415) first",
        "(warm_up pid=20415) second",
        "(PortalActor pid=20415) third",
    ]


def test_a_file_that_shrank_is_read_again_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / OUT
    path.write_text("a long first line written before the rotation\n")
    logs, out, _ = forwarder(tmp_path)
    logs.forward_new_lines()
    path.write_text("after\n")
    logs.forward_new_lines()
    assert out.getvalue().splitlines()[-1] == "(worker pid=20415) after"


def test_stop_forwards_what_is_left_and_a_missing_folder_is_no_error(tmp_path: Path) -> None:
    logs, out, _ = forwarder(tmp_path / "not yet")
    logs.start()
    (tmp_path / "not yet").mkdir()
    (tmp_path / "not yet" / OUT).write_text("last words\n")
    logs.stop()
    assert out.getvalue() == "(worker pid=20415) last words\n"


def test_a_forwarder_taking_over_goes_on_where_the_last_one_stopped(tmp_path: Path) -> None:
    """The driver's forwarder hands its positions to the keeper's (actors/keeper.py): each
    line once, and lines after the hand-over still named by the marker read before it."""
    path = tmp_path / OUT
    path.write_text(":job_id:01000000\n:actor_name:PortalActor\nbefore\npart")
    first, out, _ = forwarder(tmp_path)
    first.forward_new_lines()
    with path.open("a") as file:
        file.write("ial\n")
    out_after = io.StringIO()
    second = WorkerLogForwarder(tmp_path, stdout=out_after, positions=first.positions())
    with path.open("a") as file:
        file.write("after\n")
    second.forward_new_lines()
    assert out.getvalue() == "(PortalActor pid=20415) before\n"
    assert out_after.getvalue().splitlines() == [
        "(PortalActor pid=20415) partial",
        "(PortalActor pid=20415) after",
    ]
