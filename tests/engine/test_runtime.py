"""Owning the engine's processes: one engine per data folder, leftovers found and killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.runtime import DataDirLock, kill_leftovers, processes_using, ray_temp_dir

ROOT = Path(__file__).resolve().parents[2]


def python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def try_lock_in_subprocess(data_dir: Path) -> str:
    """Another process asking for the lock: prints the refusal, or 'locked'."""
    code = f"""
        from pathlib import Path
        from engine.errors import ConfigError
        from engine.runtime import DataDirLock
        try:
            DataDirLock(Path({str(data_dir)!r})).acquire()
        except ConfigError as exc:
            print("refused:", exc)
        else:
            print("locked")
    """
    done = subprocess.run(
        python(code), capture_output=True, text=True, timeout=60, cwd=ROOT, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()


def start_holder(code: str, children: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    """A subprocess that prints one line when ready, then blocks until killed."""
    child = subprocess.Popen(
        python(code), stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True, cwd=ROOT
    )
    children.append(child)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    return child


def test_a_second_lock_is_refused_naming_the_holder(tmp_path: Path) -> None:
    lock = DataDirLock(tmp_path / "data")
    lock.acquire()
    try:
        answer = try_lock_in_subprocess(tmp_path / "data")
        assert answer.startswith("refused: ")
        assert f"another engine (pid {os.getpid()}) runs on data folder" in answer
        assert str(tmp_path / "data") in answer
        with pytest.raises(ConfigError, match=rf"pid {os.getpid()}"):
            DataDirLock(tmp_path / "data").acquire()  # another open file in this process too
    finally:
        lock.release()
    assert try_lock_in_subprocess(tmp_path / "data") == "locked"


def test_the_lock_is_free_after_the_holder_is_killed(
    tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    data_dir = tmp_path / "data"
    holder = start_holder(
        f"""
        import sys
        from pathlib import Path
        from engine.runtime import DataDirLock
        lock = DataDirLock(Path({str(data_dir)!r}))  # held while the process lives
        lock.acquire()
        print("ready", flush=True)
        sys.stdin.read()
        """,
        children,
    )
    with pytest.raises(ConfigError, match=rf"another engine \(pid {holder.pid}\)"):
        DataDirLock(data_dir).acquire()
    holder.send_signal(signal.SIGKILL)
    assert holder.wait(timeout=10) == -signal.SIGKILL

    lock = DataDirLock(data_dir)
    lock.acquire()
    try:
        assert (data_dir / "engine.lock").read_text() == str(os.getpid())
    finally:
        lock.release()


def test_kill_leftovers_kills_what_holds_files_in_the_folder(
    tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    temp = tmp_path / "ray-temp"
    (temp / "session" / "logs").mkdir(parents=True)
    bystander_file = tmp_path / "elsewhere.log"
    code = """
        import sys
        handle = open({path!r}, "w")
        print("ready", flush=True)
        sys.stdin.read()
    """
    agent_log = temp / "session" / "logs" / "agent.log"
    leftover = start_holder(code.format(path=str(agent_log)), children)
    bystander = start_holder(code.format(path=str(bystander_file)), children)
    assert processes_using(temp) == [leftover.pid]

    own = open(temp / "ours.txt", "w")
    try:
        assert kill_leftovers(temp) == [leftover.pid]
    finally:
        own.close()
    assert leftover.wait(timeout=10) == -signal.SIGKILL
    assert bystander.poll() is None
    assert processes_using(temp) == []
    assert kill_leftovers(temp) == []


def test_a_folder_with_a_similar_name_is_not_ours(
    tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    (tmp_path / "olr-1").mkdir()
    (tmp_path / "olr-10").mkdir()
    holder = start_holder(
        f"""
        import sys
        handle = open({str(tmp_path / "olr-10" / "x")!r}, "w")
        print("ready", flush=True)
        sys.stdin.read()
        """,
        children,
    )
    assert processes_using(tmp_path / "olr-1") == []
    assert processes_using(tmp_path / "olr-10") == [holder.pid]


def test_ray_temp_dir_is_short_and_per_data_folder(tmp_path: Path) -> None:
    first = ray_temp_dir(tmp_path / "a")
    assert first == ray_temp_dir(tmp_path / "a" / ".." / "a")
    assert first != ray_temp_dir(tmp_path / "b")
    assert len(str(first)) < 40


def test_engine_logic_imports_no_ray() -> None:
    code = """
        import sys
        import engine.delivery.host, engine.routing.portal_router, engine.routing.rules_holder
        import engine.ingest, engine.runtime
        import engine.config, engine.metrics, engine.registry
        print("ray" in sys.modules)
    """
    done = subprocess.run(
        python(code), capture_output=True, text=True, timeout=60, cwd=ROOT, check=True
    )
    assert done.stdout.strip() == "False", done.stderr
