"""The holder of the routing rules (``engine.routing.rules_holder``): the rules folder read
into versioned snapshots; a bad edit never takes effect and its error is kept until fixed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.routing.rules_holder import RulesHolder

SUPPORT = (
    "portal: p1\nline: support\nqueue:\n  members:\n"
    "    - operator: op-a\n    - operator: op-b\n    - operator: op-c\n"
)
SALES = (
    "portal: p1\nline: sales\nqueue:\n  members:\n    - operator: op-s1\n    - operator: op-s2\n"
)


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "support.yaml").write_text(SUPPORT)
    (directory / "sales.yaml").write_text(SALES)
    return directory


def queue(holder: RulesHolder, line: str = "support") -> tuple[str, ...]:
    """The line's operators in queue order, as the rules in force have them."""
    rules = holder.rules.for_line("p1", line)
    assert rules is not None, f"no rules for line {line!r}"
    return rules.queue_order


def test_the_folder_is_in_force_from_the_start(rules_dir: Path) -> None:
    holder = RulesHolder(rules_dir)
    assert holder.error is None
    assert holder.rules.version == 1
    assert queue(holder) == ("op-a", "op-b", "op-c")
    assert queue(holder, "sales") == ("op-s1", "op-s2")
    assert holder.reload() is False  # nothing changed
    assert holder.rules.version == 1
    assert holder.reload(force=True) is True
    assert holder.rules.version == 2


def test_bad_rules_at_start_are_refused(tmp_path: Path) -> None:
    (tmp_path / "support.yaml").write_text("portal: p1\nline: support\nqueue:\n  members: []\n")
    with pytest.raises(
        ConfigError, match=r"support\.yaml:4: queue\.members: Tuple should have at least 1 item"
    ):
        RulesHolder(tmp_path)


def test_an_unreadable_folder_at_start_is_refused(tmp_path: Path) -> None:
    rules_link = tmp_path / "rules"
    make_unreadable(rules_link)
    with pytest.raises(ConfigError, match=r"rules: cannot read the rules folder: .*too long"):
        RulesHolder(rules_link)


def test_a_bad_edit_keeps_the_old_rules_then_a_fix_takes_effect(rules_dir: Path) -> None:
    holder = RulesHolder(rules_dir)

    (rules_dir / "support.yaml").write_text(SUPPORT + "    - operator: 'op d'\n")
    assert holder.reload() is False
    assert holder.error is not None
    assert "support.yaml:8: queue.members.3.operator: String should match" in holder.error
    assert holder.rules.version == 1
    assert queue(holder) == ("op-a", "op-b", "op-c")
    reported = holder.error
    assert holder.reload() is False  # polled again: the old rules and the error stay
    assert holder.error == reported

    (rules_dir / "support.yaml").write_text(SUPPORT + "    - operator: op-d\n")
    assert holder.reload() is True
    assert holder.error is None
    assert holder.rules.version == 2
    assert queue(holder) == ("op-a", "op-b", "op-c", "op-d")


def test_a_rule_that_contradicts_itself_is_a_bad_edit(rules_dir: Path) -> None:
    holder = RulesHolder(rules_dir)
    (rules_dir / "night.yaml").write_text(
        "portal: p1\nline: night\nqueue:\n  members:\n    - group: night-shift\n"
    )
    assert holder.reload() is False
    assert holder.error is not None
    assert "queue member group 'night-shift' is not in groups" in holder.error
    assert holder.rules.for_line("p1", "night") is None
    assert holder.rules.version == 1


def test_invalid_yaml_in_an_edit_names_the_line_and_keeps_rules(rules_dir: Path) -> None:
    holder = RulesHolder(rules_dir)
    (rules_dir / "sales.yaml").write_text("portal: p1\nline: sales\nqueue: [\n")
    assert holder.reload() is False
    assert holder.error is not None
    assert "sales.yaml:4: invalid YAML" in holder.error
    assert queue(holder, "sales") == ("op-s1", "op-s2")


def test_a_second_file_for_the_same_line_is_refused_on_reload(rules_dir: Path) -> None:
    holder = RulesHolder(rules_dir)
    (rules_dir / "support2.yaml").write_text(SUPPORT.replace("op-c", "op-x"))
    assert holder.reload() is False
    assert holder.error is not None
    assert "support2.yaml: line 'support' of portal 'p1' is already routed by" in holder.error
    assert queue(holder) == ("op-a", "op-b", "op-c")


def test_an_edit_that_keeps_size_and_mtime_is_still_seen(rules_dir: Path) -> None:
    """File times are only as fine as the kernel's tick: two saves can share one."""
    holder = RulesHolder(rules_dir)
    path = rules_dir / "support.yaml"
    before = path.stat()
    path.write_text(SUPPORT.replace("op-c", "op-x"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert holder.reload() is True
    assert queue(holder) == ("op-a", "op-b", "op-x")


def test_a_removed_file_removes_its_line(rules_dir: Path) -> None:
    holder = RulesHolder(rules_dir)
    (rules_dir / "sales.yaml").unlink()
    assert holder.reload() is True
    assert holder.rules.for_line("p1", "sales") is None
    assert queue(holder) == ("op-a", "op-b", "op-c")
    assert holder.rules.version == 2


def test_an_unreadable_rule_file_is_a_bad_edit_named_by_its_file(rules_dir: Path) -> None:
    holder = RulesHolder(rules_dir)
    (rules_dir / "broken.yaml").mkdir()  # listed as a rule file, cannot be read as one
    assert holder.reload() is False
    assert holder.error is not None
    assert f"{rules_dir / 'broken.yaml'}: cannot read rules: " in holder.error
    assert queue(holder) == ("op-a", "op-b", "op-c")
    assert holder.rules.version == 1

    (rules_dir / "broken.yaml").rmdir()
    assert holder.reload() is True
    assert holder.error is None
    assert queue(holder) == ("op-a", "op-b", "op-c")


@pytest.fixture
def linked_rules(rules_dir: Path, tmp_path: Path) -> Path:
    """The rules folder reached through a link, so a test can make it unreadable."""
    link = tmp_path / "linked-rules"
    link.symlink_to(rules_dir)
    return link


def make_unreadable(link: Path) -> None:
    """Point ``link`` through a name longer than the system allows: reading the folder then
    fails with an OS error, even for root (whom permissions would not stop)."""
    link.unlink(missing_ok=True)
    link.symlink_to(link.parent / ("x" * 300))


def make_readable(link: Path, target: Path) -> None:
    link.unlink()
    link.symlink_to(target)


def test_an_unreadable_folder_keeps_the_rules_and_reports_it(
    rules_dir: Path, linked_rules: Path
) -> None:
    holder = RulesHolder(linked_rules)
    make_unreadable(linked_rules)
    assert holder.reload() is False
    assert holder.error is not None
    assert holder.error.startswith(f"{linked_rules}: cannot read the rules folder: ")
    assert "File name too long" in holder.error
    assert queue(holder) == ("op-a", "op-b", "op-c")
    assert holder.rules.version == 1

    (rules_dir / "support.yaml").write_text(SUPPORT.replace("op-c", "op-x"))
    make_readable(linked_rules, rules_dir)
    assert holder.reload() is True  # readable again, with an edit: it takes effect
    assert holder.error is None
    assert queue(holder) == ("op-a", "op-b", "op-x")
    assert holder.rules.version == 2


def test_a_folder_readable_again_clears_the_error(rules_dir: Path, linked_rules: Path) -> None:
    holder = RulesHolder(linked_rules)
    make_unreadable(linked_rules)
    assert holder.reload() is False
    make_readable(linked_rules, rules_dir)
    holder.reload()
    assert holder.error is None  # the rules in force are what the folder holds


def test_a_folder_that_disappears_keeps_the_rules_in_force(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "support.yaml").write_text(
        "portal: p1\nline: support\nqueue:\n  members: [{operator: anna}]\n"
    )
    holder = RulesHolder(folder)
    (folder / "support.yaml").unlink()
    folder.rmdir()

    assert holder.reload() is False

    assert holder.rules.for_line("p1", "support") is not None
    assert holder.error is not None and "the rules folder is gone" in holder.error
