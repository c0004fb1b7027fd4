"""Settings: the bundled config.yaml, defaults, overrides and the errors a user sees."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from watcher.config import Settings, default_settings, load_config
from watcher.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_bundled_config_documents_exactly_the_defaults():
    bundled = load_config(ROOT / "config.yaml")
    assert bundled == default_settings(ROOT)
    text = (ROOT / "config.yaml").read_text()
    for section in dataclasses.fields(Settings):
        if section.name == "path":
            continue
        assert f"\n{section.name}:" in text
        if section.default_factory is dataclasses.MISSING:  # a key of its own, not a section
            continue
        for f in dataclasses.fields(section.type if isinstance(section.type, type) else section.default_factory()):
            assert f"  {f.name}:" in text, f"{section.name}.{f.name} is not documented in config.yaml"


def test_empty_file_gives_defaults_with_folders_beside_it(tmp_path: Path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("")
    s = load_config(cfg)
    assert s.folders.inbox == tmp_path / "inbox"
    assert s.render.timeout == 300 and s.validation.enabled


def test_settings_are_frozen():
    s = load_config(None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.render.timeout = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("render:\n  timout: 5\n", "unknown key render.timout"),
        ("rendr: {}\n", "unknown key rendr"),
        ("render:\n  timeout: -1\n", "render.timeout must be >= 0.1, got -1"),
        ("render:\n  timeout: soon\n", "render.timeout must be a number, got 'soon'"),
        ("render:\n  memory_limit_mb: 1.5\n", "render.memory_limit_mb must be an integer, got 1.5"),
        ("validation:\n  enabled: yes please\n", "validation.enabled must be true or false"),
        ("validation:\n  forbidden_calls: eval\n", "validation.forbidden_calls must be a list of strings"),
        ("render:\n  quality: ultra\n", "render.quality must be one of"),
        ("render:\n  scene: 'two words'\n", "render.scene must be auto, all or a class name"),
        ("logging:\n  format: xml\n", "logging.format must be one of text, json; got 'xml'"),
        ("render: 5\n", "render must be a mapping, got 5"),
        ("- a\n- b\n", "config must be a mapping"),
        ("render:\n  timeout: [1\n", "invalid YAML in"),
    ],
)
def test_bad_config_names_the_key_and_value(tmp_path: Path, text: str, message: str):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_is_one_clear_line(tmp_path: Path):
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_are_typed_and_checked():
    s = load_config(None, ["render.timeout=7", "render.quality=m", "validation.enabled=false", "workers.count=3"])
    assert s.render.timeout == 7.0 and s.render.quality == "medium_quality"
    assert not s.validation.enabled and s.worker_count == 3
    with pytest.raises(ConfigError, match="unknown key render.nope"):
        load_config(None, ["render.nope=1"])
    with pytest.raises(ConfigError, match="key.path=value"):
        load_config(None, ["render.timeout"])
