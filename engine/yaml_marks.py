"""YAML loaded safely with the line of every node kept, so errors can point at it."""

from __future__ import annotations

import contextlib
from typing import Any, TypeVar

import orjson
import yaml
from pydantic import BaseModel, ValidationError

from engine.errors import ConfigError

Marks = dict[tuple[str | int, ...], int]
M = TypeVar("M", bound=BaseModel)


class _MarkingLoader(yaml.SafeLoader):
    """A safe loader that records the 1-based line of every mapping value and list item."""


def _walk(node: yaml.Node, path: tuple[str | int, ...], marks: Marks) -> None:
    marks[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            marks[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), marks)
            marks[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), marks)


_FAST_SAFE_LOADER: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML was built with it: a config of thousands of portals
loads several times faster and leaves much less memory behind in the engine's driver."""


class _Loader(_FAST_SAFE_LOADER):  # type: ignore[misc]
    """The fast safe loader, with a date the calendar lacks reported at its line.

    PyYAML reads ``2026-02-30`` as a timestamp and then fails with a bare ``ValueError``
    that has no line; here it becomes a YAML error with the node's mark.
    """

    def construct_yaml_timestamp(self, node: yaml.Node) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} is not a real date or time: {exc}", node.start_mark
            ) from None


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


def load_yaml(text: str, source: str) -> Any:
    """Parse ``text`` safely; ``ConfigError`` with file and line when it is not valid YAML.

    A text that is JSON (a subset of YAML, what a program generating the config of
    thousands of portals writes) is read by orjson: 10,000 portals load in about 0.1 s
    instead of 5 s through libyaml. Anything orjson refuses is read as YAML, so errors
    still come with their line.
    """
    if text.lstrip().startswith("{"):
        # Not JSON: YAML's flow style, or broken, and the YAML parser reads it or says where.
        with contextlib.suppress(orjson.JSONDecodeError):
            return orjson.loads(text)
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None


def yaml_marks(text: str) -> Marks:
    """The line of every mapping key and list item of an already valid YAML text.

    Computed only when a validation error needs lines: for a config with thousands of
    portals the marks take more memory than the config itself.
    """
    node = yaml.compose(text, Loader=_MarkingLoader)
    marks: Marks = {}
    if node is not None:
        _walk(node, (), marks)
    return marks


def parse_yaml_model(model: type[M], text: str, source: str, empty: Any = None) -> M:
    """Load and validate ``text`` as ``model``; errors name file, line and field."""
    data = load_yaml(text, source)
    try:
        return model.model_validate(empty if data is None else data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, yaml_marks(text))) from None


def _line_of(marks: Marks | None, location: tuple[str | int, ...]) -> int | None:
    if not marks:
        return None
    path = tuple(location)
    while path:
        if path in marks:
            return marks[path]
        path = path[:-1]
    return marks.get(())


def format_validation_error(exc: ValidationError, source: str, marks: Marks | None) -> str:
    """One line per problem: ``file:line: field.path: what was expected``."""
    lines = []
    for error in exc.errors():
        location = tuple(error["loc"])
        field = ".".join(str(part) for part in location) or "(top level)"
        line = _line_of(marks, location)
        where = f"{source}:{line}" if line is not None else source
        lines.append(f"{where}: {field}: {error['msg']}")
    return "\n".join(lines)
