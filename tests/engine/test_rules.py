"""Routing rules: one YAML file per open line, validated whole, errors that point."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import ConfigError
from engine.routing.assignment import round_robin
from engine.routing.rules import LineRules, load_rules

GOOD = "portal: p1\nline: support\noperators:\n  - id: op-a\n  - id: op-b\n"


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_rules_load_per_portal_and_line(tmp_path: Path) -> None:
    write(tmp_path, "support.yaml", GOOD)
    write(tmp_path, "sales.yaml", "portal: p1\nline: sales\noperators:\n  - id: op-s\n")
    write(tmp_path, "notes.txt", "not rules")
    rules = load_rules(tmp_path, version=3)
    assert rules.version == 3
    support = rules.for_line("p1", "support")
    assert support is not None
    assert [operator.id for operator in support.operators] == ["op-a", "op-b"]
    assert support.strategy == "round_robin"
    assert rules.for_line("p1", "nope") is None
    assert sorted(rules.lines) == [("p1", "sales"), ("p1", "support")]


def test_a_missing_folder_is_no_rules(tmp_path: Path) -> None:
    rules = load_rules(tmp_path / "absent", version=1)
    assert rules.lines == {}


def test_an_empty_operator_list_names_file_line_and_field(tmp_path: Path) -> None:
    write(tmp_path, "support.yaml", "portal: p1\nline: support\noperators: []\n")
    with pytest.raises(
        ConfigError, match=r"support\.yaml:3: operators: Tuple should have at least 1 item"
    ):
        load_rules(tmp_path, version=1)


def test_a_bad_operator_id_points_at_its_item(tmp_path: Path) -> None:
    text = "portal: p1\nline: support\noperators:\n  - id: op-a\n  - id: 'op b!'\n"
    write(tmp_path, "support.yaml", text)
    with pytest.raises(
        ConfigError, match=r"support\.yaml:5: operators\.1\.id: String should match"
    ):
        load_rules(tmp_path, version=1)


def test_unknown_fields_and_strategies_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "support.yaml", GOOD + "strategy: random\nweights: 3\n")
    with pytest.raises(ConfigError) as caught:
        load_rules(tmp_path, version=1)
    message = str(caught.value)
    assert "support.yaml:6: strategy: Input should be 'round_robin'" in message
    assert "support.yaml:7: weights: Extra inputs are not permitted" in message


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    write(tmp_path, "support.yaml", "portal: p1\nline: support\noperators:\n  - id: [op-a\n")
    with pytest.raises(ConfigError, match=r"support\.yaml:5: invalid YAML"):
        load_rules(tmp_path, version=1)


def test_every_bad_file_is_reported_together(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "portal: p1\nline: a\noperators: []\n")
    write(tmp_path, "b.yaml", "portal: p1\nline: b\n")
    with pytest.raises(ConfigError) as caught:
        load_rules(tmp_path, version=1)
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert "a.yaml:3: operators" in lines[0]
    assert "b.yaml:1: operators: Field required" in lines[1]


def test_a_line_routed_by_two_files_is_refused(tmp_path: Path) -> None:
    first = write(tmp_path, "a-support.yaml", GOOD)
    write(tmp_path, "b-support.yaml", GOOD.replace("op-a", "op-x"))
    with pytest.raises(
        ConfigError,
        match=rf"b-support\.yaml: line 'support' of portal 'p1' is already routed by {first}",
    ):
        load_rules(tmp_path, version=1)


def test_the_same_line_name_in_two_portals_is_fine(tmp_path: Path) -> None:
    write(tmp_path, "p1.yaml", GOOD)
    write(tmp_path, "p2.yaml", GOOD.replace("portal: p1", "portal: p2"))
    assert len(load_rules(tmp_path, version=1).lines) == 2


# -- round robin ----------------------------------------------------------------------------


def line_rules(*operators: str) -> LineRules:
    return LineRules.model_validate(
        {"portal": "p1", "line": "support", "operators": [{"id": o} for o in operators]}
    )


def test_round_robin_cycles_through_the_operators() -> None:
    rules = line_rules("a", "b", "c")
    cursor = 0
    chosen = []
    for _ in range(7):
        operator, cursor = round_robin(rules, cursor)
        chosen.append(operator)
    assert chosen == ["a", "b", "c", "a", "b", "c", "a"]


def test_no_rules_leaves_the_dialog_queued() -> None:
    assert round_robin(None, 5) == (None, 5)


def test_a_cursor_past_a_shrunk_list_wraps() -> None:
    assert round_robin(line_rules("a", "b"), 7) == ("b", 0)


@given(
    operators=st.integers(min_value=1, max_value=8),
    start=st.integers(min_value=0, max_value=1000),
    turns=st.integers(min_value=0, max_value=50),
)
def test_round_robin_is_fair(operators: int, start: int, turns: int) -> None:
    rules = line_rules(*(f"op{n}" for n in range(operators)))
    counts = dict.fromkeys((f"op{n}" for n in range(operators)), 0)
    cursor = start
    for _ in range(turns):
        operator, cursor = round_robin(rules, cursor)
        assert operator is not None
        counts[operator] += 1
        assert 0 <= cursor < operators
    assert max(counts.values()) - min(counts.values()) <= 1
