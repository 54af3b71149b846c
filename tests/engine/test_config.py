"""The engine's config and registry: validated at load, errors that name file, line and field."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from engine.config import (
    ConnectorConfig,
    EngineConfig,
    PortalConfig,
    load_engine_config,
    parse_engine_config,
)
from engine.errors import ConfigError, NotFoundError
from engine.placement import host_name
from engine.registry import Registry, check_references
from engine.security.keys import generate_portal_keypair
from engine.yaml_marks import load_yaml, yaml_marks

PUBLIC_KEY = generate_portal_keypair()[1]

PORTAL_YAML = f"""\
portals:
  - id: p1
    endpoint: http://127.0.0.1:9000/openlines
    public_key: {PUBLIC_KEY}
    license_key: license-p1-0123456789
    lines:
      - id: support
"""


def write(tmp_path: Path, text: str, name: str = "engine.yaml") -> Path:
    path = tmp_path / "conf" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def portal(**overrides: object) -> PortalConfig:
    data: dict[str, object] = {
        "id": "p1",
        "endpoint": "http://127.0.0.1:9000/openlines",
        "public_key": PUBLIC_KEY,
        "license_key": "license-p1-0123456789",
        "lines": [{"id": "support"}, {"id": "sales"}],
    }
    data.update(overrides)
    return PortalConfig.model_validate(data)


def connector(**overrides: object) -> ConnectorConfig:
    data: dict[str, object] = {
        "id": "tg-1",
        "channel": "telegram",
        "portal": "p1",
        "line": "support",
        "credentials": {"bot_token": "1:x", "secret_token": "s"},
    }
    data.update(overrides)
    return ConnectorConfig.model_validate(data)


def test_a_valid_file_loads_with_defaults(tmp_path: Path) -> None:
    config = load_engine_config(write(tmp_path, "port: 9090\n" + PORTAL_YAML))
    assert config.port == 9090
    assert config.host == "127.0.0.1"
    (only,) = config.portals
    assert only.line_ids() == {"support"}
    assert (only.queue, only.delivery, only.ttl_s) == ("sequential", "guaranteed", 86_400)


def test_an_unknown_field_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "host: 127.0.0.1\nport: 8080\nbogus_field: 1\n")
    with pytest.raises(ConfigError, match=r"engine\.yaml:3: bogus_field: Extra inputs"):
        load_engine_config(path)


def test_a_nested_error_points_at_its_own_line(tmp_path: Path) -> None:
    text = PORTAL_YAML + "    queue: fifo\n    colour: blue\n"
    with pytest.raises(ConfigError) as caught:
        load_engine_config(write(tmp_path, text))
    lines = str(caught.value).splitlines()
    assert any(
        line.endswith("engine.yaml:8: portals.0.queue: Input should be 'sequential' or 'parallel'")
        for line in lines
    ), lines
    assert any(
        line.endswith("engine.yaml:9: portals.0.colour: Extra inputs are not permitted")
        for line in lines
    ), lines


def test_a_list_item_error_points_at_the_item(tmp_path: Path) -> None:
    text = PORTAL_YAML + "      - id: 'no spaces allowed'\n"
    with pytest.raises(ConfigError, match=r"engine\.yaml:8: portals\.0\.lines\.1\.id: String"):
        load_engine_config(write(tmp_path, text))


def test_a_missing_field_is_named(tmp_path: Path) -> None:
    text = f"portals:\n  - id: p1\n    endpoint: http://x\n    public_key: {PUBLIC_KEY}\n"
    with pytest.raises(ConfigError) as caught:
        load_engine_config(write(tmp_path, text))
    assert str(caught.value).endswith("engine.yaml:2: portals.0.license_key: Field required")


def test_a_public_key_that_cannot_be_sealed_to_is_refused_at_load(tmp_path: Path) -> None:
    text = PORTAL_YAML.replace(PUBLIC_KEY, "cHVibGljLWtleQ")
    with pytest.raises(
        ConfigError, match=r"engine\.yaml:4: portals\.0\.public_key: .*expected 43 base64url"
    ):
        load_engine_config(write(tmp_path, text))
    zero_point = "A" * 43  # all-zero bytes: a low-order point
    with pytest.raises(ConfigError, match=r"engine\.yaml:4: portals\.0\.public_key: .*low-order"):
        load_engine_config(write(tmp_path, PORTAL_YAML.replace(PUBLIC_KEY, zero_point)))


def test_a_portals_default_phone_region_is_a_country_code(tmp_path: Path) -> None:
    (only,) = load_engine_config(write(tmp_path, PORTAL_YAML + "    default_region: ru\n")).portals
    assert only.default_region == "RU"
    assert portal().default_region is None
    with pytest.raises(
        ConfigError, match=r"engine\.yaml:8: portals\.0\.default_region: .*'Russia' is not a two"
    ):
        load_engine_config(write(tmp_path, PORTAL_YAML + "    default_region: Russia\n"))


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "host: 127.0.0.1\nport: [8080\nchannel_actors: 2\n")
    with pytest.raises(ConfigError, match=r"engine\.yaml:3: invalid YAML: .*expected ','"):
        load_engine_config(path)


def test_a_config_written_as_json_loads_as_its_yaml_does(tmp_path: Path) -> None:
    as_yaml = load_engine_config(write(tmp_path, "port: 9090\n" + PORTAL_YAML))
    as_json = orjson.dumps({"port": 9090, **load_yaml(PORTAL_YAML, "f.yaml")}).decode()
    assert load_engine_config(write(tmp_path, as_json, "engine.json")) == as_yaml


def test_an_error_in_a_json_config_names_its_line(tmp_path: Path) -> None:
    portals = load_yaml(PORTAL_YAML, "f.yaml")["portals"]
    portals[0]["queue"] = "fifo"
    text = orjson.dumps({"portals": portals}, option=orjson.OPT_INDENT_2).decode()
    line = 1 + text.splitlines().index('      "queue": "fifo"')
    with pytest.raises(ConfigError, match=rf"engine\.json:{line}: portals\.0\.queue: Input"):
        load_engine_config(write(tmp_path, text, "engine.json"))
    broken = text.rstrip().removesuffix("}")  # not JSON: YAML's parser says where
    with pytest.raises(ConfigError, match=r"engine\.json:\d+: invalid YAML"):
        load_engine_config(write(tmp_path, broken, "engine.json"))


def test_unsafe_yaml_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "host: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match=r"engine\.yaml:1: invalid YAML"):
        load_engine_config(path)


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read config"):
        load_engine_config(tmp_path / "missing.yaml")


def test_relative_paths_are_taken_from_the_files_folder(tmp_path: Path) -> None:
    path = write(tmp_path, "data_dir: state\nrules_dir: ../rules\n")
    config = load_engine_config(path)
    assert config.data_dir == tmp_path / "conf" / "state"
    assert config.rules_dir == tmp_path / "conf" / ".." / "rules"


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    path = write(tmp_path, f"data_dir: {tmp_path / 'abs'}\n")
    config = load_engine_config(path)
    assert config.data_dir == tmp_path / "abs"
    assert config.rules_dir == tmp_path / "conf" / "routing_rules"


def test_parse_engine_config_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"^admin API: port: Input should be less than"):
        parse_engine_config({"port": 70000}, "admin API")
    assert parse_engine_config({}, "admin API") == EngineConfig()


def test_config_models_are_frozen() -> None:
    with pytest.raises(ValueError, match="frozen"):
        portal().id = "p2"


def test_marks_record_the_line_of_keys_and_items() -> None:
    text = "a: 1\nb:\n  - x: 2\n  - x: 3\n"
    data, marks = load_yaml(text, "f.yaml"), yaml_marks(text)
    assert data == {"a": 1, "b": [{"x": 2}, {"x": 3}]}
    assert marks[("a",)] == 1
    assert marks[("b",)] == 2
    assert marks[("b", 1)] == 4
    assert marks[("b", 1, "x")] == 4


# -- registry -------------------------------------------------------------------------------


def put(registry: Registry, *entries: PortalConfig | ConnectorConfig) -> Registry:
    """The registry after putting each entry in turn, one version each."""
    for entry in entries:
        if isinstance(entry, PortalConfig):
            registry = registry.checked(registry.put_portal(entry))
        else:
            registry = registry.checked(registry.put_connector(entry))
    return registry


def test_registry_accepts_a_connector_of_a_known_portal_and_line() -> None:
    registry = put(Registry(), portal(), connector(line="sales"))
    assert registry.version == 2
    assert registry.edge().connector("telegram", "tg-1").line == "sales"
    assert registry.edge().portal("p1").license_key == "license-p1-0123456789"


def test_a_registry_outline_names_its_portals_and_the_first_connectors() -> None:
    registry = put(Registry(), portal(), portal(id="p2"))
    for name in ("tg-3", "tg-1", "tg-2"):
        registry = put(registry, connector(id=name))
    outline = registry.outline(2)
    assert outline.portal_ids == ("p1", "p2")
    assert [c.id for c in outline.connectors] == ["tg-1", "tg-2"]
    assert outline.connector_count == 3
    assert registry.outline(0).connectors == ()


def test_a_pools_parts_hold_each_portal_once_with_its_connectors() -> None:
    registry = Registry()
    for index in range(12):
        added = connector(id=f"tg-{index}", portal=f"p{index}")
        registry = put(registry, portal(id=f"p{index}"), added)
    parts = registry.by_host(3)
    assert set(parts) <= {host_name(f"p{index}", 3) for index in range(12)}
    held = [portal_id for part in parts.values() for portal_id in part.portals]
    assert sorted(held) == sorted(registry.portals)
    for host, part in parts.items():
        assert all(host_name(p, 3) == host for p in part.portals)
        assert {c.portal for c in part.connectors.values()} == set(part.portals)
        assert part.version == registry.version


def test_registry_refuses_a_connector_of_an_unknown_portal() -> None:
    registry = put(Registry(), portal())
    with pytest.raises(ConfigError, match=r"connector 'tg-1': unknown portal 'p9'"):
        registry.checked(registry.put_connector(connector(portal="p9")))
    assert registry.connectors == {}


def test_registry_refuses_a_connector_of_an_unknown_line() -> None:
    registry = put(Registry(), portal())
    with pytest.raises(ConfigError, match=r"connector 'tg-1': portal 'p1' has no line 'billing'"):
        registry.checked(registry.put_connector(connector(line="billing")))


def test_registry_refuses_a_portal_edit_that_orphans_a_connector() -> None:
    registry = put(Registry(), portal(), connector(line="sales"))
    with pytest.raises(ConfigError, match=r"portal 'p1' has no line 'sales'"):
        registry.checked(registry.put_portal(portal(lines=[{"id": "support"}])))


def test_registry_lookups_of_unknown_ids() -> None:
    registry = put(Registry(), portal(), connector())
    with pytest.raises(NotFoundError, match=r"unknown portal 'p2'"):
        registry.edge().portal("p2")
    with pytest.raises(NotFoundError, match=r"unknown custom connector 'tg-1'"):
        registry.edge().connector("custom", "tg-1")
    with pytest.raises(NotFoundError, match=r"unknown connector 'tg-9'"):
        registry.remove_connector("tg-9")
    assert registry.checked(registry.remove_connector("tg-1")).connectors == {}


def test_check_references_on_a_whole_config() -> None:
    with pytest.raises(ConfigError, match="unknown portal 'p1'"):
        check_references({}, {"tg-1": connector()})


def test_an_empty_config_file_means_every_default(tmp_path: Path) -> None:
    path = tmp_path / "engine.yaml"
    path.write_text("# nothing set\n")
    config = load_engine_config(path)
    assert config.port == 8080
    assert config.data_dir == tmp_path / "data"
