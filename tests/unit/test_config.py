"""Configuration: embedded defaults, YAML files, environment overrides, unknown keys."""

from __future__ import annotations

import pytest

from orderflow.config import REPO_CONFIG_DIR, Config, ConfigError, load_config


def test_repo_config_files_equal_embedded_defaults():
    assert REPO_CONFIG_DIR.is_dir()
    assert load_config(REPO_CONFIG_DIR, environ={}) == Config()


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
    from orderflow.models.config import ModelsConfig

    assert load_config(REPO_CONFIG_DIR, environ={}).models == ModelsConfig()
    (tmp_path / "m.yaml").write_text("models:\n  n_fold: 3\n")
    with pytest.raises(ConfigError, match=r"m\.yaml[\s\S]*models\.n_fold: unknown key"):
        load_config(tmp_path, environ={})
    (tmp_path / "m.yaml").write_text("models:\n  lstm:\n    hiden: 3\n")
    with pytest.raises(ConfigError, match=r"m\.yaml[\s\S]*models\.lstm\.hiden: unknown key"):
        load_config(tmp_path, environ={})


def test_models_overrides_need_not_repeat_the_network_kind(tmp_path):
    (tmp_path / "m.yaml").write_text("models:\n  cnn:\n    epochs: 2\n")
    cfg = load_config(tmp_path, environ={"ORDERFLOW__MODELS__LSTM__HIDDEN": "64"})
    assert cfg.models.cnn.kind == "cnn" and cfg.models.cnn.epochs == 2
    assert cfg.models.lstm.kind == "lstm" and cfg.models.lstm.hidden == 64


def test_example_config_dirs_are_valid():
    from orderflow.models.config import ModelsConfig

    for d in sorted((REPO_CONFIG_DIR / "examples").iterdir()):
        assert isinstance(load_config(d, environ={}).models, ModelsConfig)  # every section validates
    short = load_config(REPO_CONFIG_DIR / "examples" / "short-recording", environ={})
    assert short.features.warmup_s == 60.0 and short.labels.horizon_s == 10.0


# -- *.yml files, other files, bad environment overrides ------------------------------------------------
def test_yml_file_is_read_like_yaml(tmp_path):
    (tmp_path / "risk.yml").write_text("risk:\n  max_adds: 5\n")
    assert load_config(tmp_path, environ={}).risk.max_adds == 5
    (tmp_path / "risk.yml").write_text("risk:\n  max_adds: 1000\n")  # out of range (0..100)
    with pytest.raises(ConfigError, match=r"risk\.yml[\s\S]*risk\.max_adds: Input should be less than"):
        load_config(tmp_path, environ={})


def test_yaml_and_yml_of_one_name_are_an_error_naming_both(tmp_path):
    (tmp_path / "risk.yaml").write_text("risk:\n  max_adds: 3\n")
    (tmp_path / "risk.yml").write_text("risk:\n  max_adds: 4\n")
    with pytest.raises(ConfigError, match=r"both risk\.yaml and risk\.yml"):
        load_config(tmp_path, environ={})


def test_other_files_in_the_config_dir_are_named_in_a_warning(tmp_path, caplog):
    (tmp_path / "risk.yaml.bak").write_text("risk:\n  max_adds: 1000\n")
    (tmp_path / ".hidden.swp").write_text("x")
    with caplog.at_level("WARNING", logger="orderflow.config"):
        assert load_config(tmp_path, environ={}) == Config()
    assert [r.getMessage() for r in caplog.records] == [
        f"config directory {tmp_path}: risk.yaml.bak is not read (only *.yaml and *.yml are)"
    ]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"ORDERFLOW__RISK__MAX_ADDS": "[1,2"},
         "environment variable ORDERFLOW__RISK__MAX_ADDS='[1,2': not valid YAML"),
        ({"ORDERFLOW__RISK": "5", "ORDERFLOW__RISK__MAX_ADDS": "3"},
         "environment variables ORDERFLOW__RISK and ORDERFLOW__RISK__MAX_ADDS both set risk"),
        ({"ORDERFLOW__RISK__MAX_ADDS": "3", "ORDERFLOW__RISK__MAX_ADDS__X": "1"},
         "environment variables ORDERFLOW__RISK__MAX_ADDS and ORDERFLOW__RISK__MAX_ADDS__X both set "
         "risk.max_adds"),
        ({"ORDERFLOW__RISK": "5"}, "environment variable ORDERFLOW__RISK='5': risk: Input should be"),
        ({"ORDERFLOW__RISK__MAX_ADDS": "1000"}, "environment variable ORDERFLOW__RISK__MAX_ADDS='1000': "
                                                "risk.max_adds: Input should be less than or equal to 100"),
        ({"ORDERFLOW__RISK__MAX_ADDZ": "1"}, "environment variable ORDERFLOW__RISK__MAX_ADDZ='1': "
                                             "risk.max_addz: unknown key"),
    ],
)  # fmt: skip
def test_bad_environment_override_is_one_line_naming_the_variable(environ, expected):
    with pytest.raises(ConfigError) as e:
        load_config(None, environ=environ)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(expected), msg


def test_bad_environment_override_through_the_cli(tmp_path, capsys, monkeypatch):
    from orderflow.cli import main

    monkeypatch.setenv("ORDERFLOW__RISK", "5")
    monkeypatch.setenv("ORDERFLOW__RISK__MAX_ADDS", "3")
    assert main(["config", "--config", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("orderflow: environment variables ORDERFLOW__RISK and")
