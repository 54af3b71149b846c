"""Routing rules: one YAML file per open line, validated whole, versioned as a snapshot.

A file names its portal and line, the operators who answer it and the strategy. A bad file
never replaces good rules: ``load_rules`` either returns a complete new ``RuleSet`` or
raises ``ConfigError`` naming every bad file, line and field.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field

from engine.config import ID_PATTERN, ConfigModel
from engine.errors import ConfigError
from engine.yaml_marks import parse_yaml_model


class OperatorRule(ConfigModel):
    id: str = Field(pattern=ID_PATTERN, description="The operator's id in the portal.")


class LineRules(ConfigModel):
    portal: str = Field(pattern=ID_PATTERN, description="Portal the line belongs to.")
    line: str = Field(pattern=ID_PATTERN, description="The open line these rules route.")
    strategy: Literal["round_robin"] = Field(
        default="round_robin", description="How a new dialog picks among the operators."
    )
    operators: tuple[OperatorRule, ...] = Field(
        min_length=1, description="Operators who answer the line, in round-robin order."
    )


@dataclass(frozen=True)
class RuleSet:
    version: int = 0
    lines: dict[tuple[str, str], LineRules] = field(default_factory=dict)
    fingerprint: tuple[tuple[str, str], ...] = ()

    def for_line(self, portal_id: str, line_id: str) -> LineRules | None:
        return self.lines.get((portal_id, line_id))


def rules_fingerprint(directory: Path) -> tuple[tuple[str, str], ...]:
    """Names and content digests of the rule files: what a reload compares.

    Not modification times and sizes: file times move only once per kernel tick, so two
    saves of the same size within one tick would look unchanged and the edit be missed.
    Rule files are small; hashing them on every check is cheap.
    """
    if not directory.is_dir():
        return ()
    return tuple(
        (path.name, hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest())
        for path in sorted(directory.glob("*.yaml"))
    )


def load_rules(directory: Path, version: int) -> RuleSet:
    """Load every ``*.yaml`` in ``directory``; all errors are reported together."""
    lines: dict[tuple[str, str], LineRules] = {}
    sources: dict[tuple[str, str], str] = {}
    errors: list[str] = []
    fingerprint = rules_fingerprint(directory)
    for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else []:
        try:
            rules = _load_file(path)
        except ConfigError as exc:
            errors.append(str(exc))
            continue
        key = (rules.portal, rules.line)
        if key in lines:
            errors.append(
                f"{path}: line {rules.line!r} of portal {rules.portal!r} "
                f"is already routed by {sources[key]}"
            )
            continue
        lines[key] = rules
        sources[key] = str(path)
    if errors:
        raise ConfigError("\n".join(errors))
    return RuleSet(version, lines, fingerprint)


def _load_file(path: Path) -> LineRules:
    return parse_yaml_model(LineRules, path.read_text(encoding="utf-8"), str(path))
