"""Configuration: embedded defaults, YAML files, environment overrides, unknown keys."""

from __future__ import annotations

import pytest

from orderflow.config import REPO_CONFIG_DIR, Config, ConfigError, load_config


def test_repo_config_files_equal_embedded_defaults():
    assert REPO_CONFIG_DIR.is_dir()
    # the models section is validated by the models commands (test below)
    assert load_config(REPO_CONFIG_DIR, environ={}).model_copy(update={"models": {}}) == Config()


def test_defaults_without_any_file(tmp_path):
    cfg = load_config(tmp_path, environ={})
    assert cfg == Config()
    assert cfg.feed.depth_stream == "depth@0ms" and cfg.feed.max_weight_per_minute == 2400
    assert cfg.quality.max_gaps == 0


def test_yaml_and_environment_overrides(tmp_path):
    (tmp_path / "a.yaml").write_text("quality:\n  max_gaps: 4\nsimulator:\n  hours: 2.5\n")
    cfg = load_config(
        tmp_path, environ={"ORDERFLOW__SIMULATOR__SEED": "7", "ORDERFLOW__QUALITY__MAX_GAPS": "5"}
    )
    assert cfg.simulator.hours == 2.5 and cfg.simulator.seed == 7
    assert cfg.quality.max_gaps == 5  # environment wins over files


def test_unknown_key_in_file_is_an_error_naming_key_and_file(tmp_path):
    (tmp_path / "bad.yaml").write_text("quality:\n  max_gapz: 1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml[\s\S]*quality\.max_gapz: unknown key"):
        load_config(tmp_path, environ={})


def test_unknown_section_and_bad_env_value(tmp_path):
    (tmp_path / "x.yaml").write_text("strategy_typo:\n  a: 1\n")
    with pytest.raises(ConfigError, match="strategy_typo: unknown key"):
        load_config(tmp_path, environ={})
    with pytest.raises(ConfigError, match="environment"):
        load_config(tmp_path / "missing-ok" if False else None, environ={"ORDERFLOW__SIMULATOR__HOURS": "-1"})


def test_config_is_frozen():
    cfg = Config()
    with pytest.raises(Exception, match="frozen"):
        cfg.quality.max_gaps = 3  # type: ignore[misc]


def test_store_dir_precedence(monkeypatch, tmp_path):
    cfg = load_config(tmp_path, environ={})
    monkeypatch.setenv("ORDERFLOW_STORE", str(tmp_path / "env"))
    assert cfg.store_dir() == tmp_path / "env"
    assert cfg.store_dir(str(tmp_path / "cli")) == tmp_path / "cli"
    monkeypatch.delenv("ORDERFLOW_STORE")
    assert cfg.store_dir().name == "store"


def test_missing_config_dir_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope", environ={})


def test_models_section_validates_as_models_config(tmp_path):
    from orderflow.commands import UserError
    from orderflow.models.cli_commands import models_config
    from orderflow.models.train import ModelsConfig

    assert models_config(load_config(REPO_CONFIG_DIR, environ={})) == ModelsConfig()
    (tmp_path / "m.yaml").write_text("models:\n  n_fold: 3\n")
    with pytest.raises(UserError, match=r"models\.n_fold: unknown key"):
        models_config(load_config(tmp_path, environ={}))


def test_example_config_dirs_are_valid():
    from orderflow.models.cli_commands import models_config

    for d in sorted((REPO_CONFIG_DIR / "examples").iterdir()):
        cfg = load_config(d, environ={})
        models_config(cfg)  # the models section validates too
    short = load_config(REPO_CONFIG_DIR / "examples" / "short-recording", environ={})
    assert short.features.warmup_s == 60.0 and short.labels.horizon_s == 10.0
