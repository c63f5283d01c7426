"""The search space: the example file parses, every refusal names the key in one line, and sampling
follows the kinds, conditions and the one_minus tie."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from orderflow.config import Config
from orderflow.optimize.space import InvalidPoint, SpaceError, apply_values, load_space, parse_space

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_space_file_parses_and_the_config_dir_ignores_its_folder():
    space = load_space(ROOT / "config" / "optimize" / "space.yaml")
    assert "strategy.confidence_gate" in space.keys and space.settings.objective == "sharpe"
    kinds = {p.key: p.kind for p in space.params}
    assert kinds["risk.max_adds"] == "int" and kinds["execution.entry_style"] == "categorical"
    assert kinds["strategy.w_ai"] == "one_minus"
    from orderflow.config import load_config

    load_config(ROOT / "config")  # config/optimize/ is a folder: load_config reads only files


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"strategy.confidence_gat": {"low": 0.5, "high": 0.9}},
         r"strategy\.confidence_gat: unknown key \(strategy has no key 'confidence_gat'\)"),
        ({"stratgy.threshold": {"low": 0.1, "high": 0.2}}, r"stratgy\.threshold: unknown section 'stratgy'"),
        ({"strategy.confidence_gate": {"low": 0.3, "high": 0.9}},
         r"strategy\.confidence_gate: low 0\.3 is out of range \(Input should be greater than or equal "
         r"to 0\.5\)"),
        ({"risk.max_loss_per_trade": {"low": 0.01, "high": 0.05}},
         r"risk\.max_loss_per_trade: high 0\.05 is out of range"),
        ({"risk.max_adds": {"low": 0.5, "high": 3}}, r"integer key; low 0\.5 is not an integer"),
        ({"strategy.threshold": {"low": 0.5, "high": 0.2}}, r"low 0\.5 must be below high 0\.2"),
        ({"strategy.ev_cost_mult": {"low": 0.0, "high": 2.0, "log": True}}, r"log needs low > 0"),
        ({"execution.entry_style": {"choices": ["market", "pasive"]}}, r"choice 'pasive' is out of range"),
        ({"execution.entry_style": {"low": 0, "high": 1}}, r"is not a number .*; give choices"),
        ({"strategy.regimes": {"low": 0, "high": 1}}, r"strategy\.regimes is a whole section"),
        ({"walkforward.test_hours": {"low": 1, "high": 3}}, r"walkforward keys move the test windows"),
        ({"features.tick_size": {"low": 0.1, "high": 1.0}}, r"features\.tick_size is not searchable"),
        ({"models.n_folds": {"low": 1.5, "high": 3}}, r"models\.n_folds is an integer key"),
        ({"data.store": {"choices": ["a"]}}, r"the data section is not searchable"),
        ({"strategy.threshold": {"low": 0.1, "hi": 0.2}}, r"unknown entry 'hi'"),
        ({"strategy.passive_ttl_s": {"low": 1, "high": 2, "when": {"execution.entry_style": "passive"}}},
         r"unknown key"),
        ({"execution.passive_ttl_s": {"low": 1, "high": 2, "when": {"execution.entry_style": "passive"}}},
         r"when 'execution\.entry_style': not an earlier categorical key"),
        ({"strategy.w_ai": {"one_minus": "strategy.w_ofi"}},
         r"one_minus 'strategy\.w_ofi' must name an earlier"),
    ],
)  # fmt: skip
def test_a_bad_space_is_refused_by_name_in_one_line(space, message):
    with pytest.raises(SpaceError, match=message) as e:
        parse_space({"space": space}, "s.yaml")
    assert str(e.value).startswith("s.yaml: ") and "\n" not in str(e.value)


def test_bad_study_settings_and_files_are_one_line_errors(tmp_path):
    with pytest.raises(SpaceError, match=r"s\.yaml: study\.objectiv: unknown key"):
        parse_space({"study": {"objectiv": "x"}, "space": {"strategy.threshold": {"low": 0.1, "high": 0.2}}},
                    "s.yaml")  # fmt: skip
    with pytest.raises(SpaceError, match=r"cscv_blocks must be even"):
        parse_space({"study": {"cscv_blocks": 5}, "space": {"strategy.threshold": {"low": 0.1, "high": 0.2}}})
    with pytest.raises(SpaceError, match=r"no such space file"):
        load_space(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("space: [1, 2\n")
    with pytest.raises(SpaceError, match=r"bad\.yaml: not valid YAML"):
        load_space(tmp_path / "bad.yaml")


def test_sampling_follows_kinds_conditions_and_one_minus():
    space = parse_space({"space": {
        "execution.entry_style": {"choices": ["market", "passive"]},
        "execution.passive_ttl_s": {"low": 2, "high": 30, "when": {"execution.entry_style": "passive"}},
        "risk.max_adds": {"low": 0, "high": 4, "step": 2},
        "strategy.timeout_s": {"low": 30, "high": 300, "step": 30},
        "risk.max_loss_per_trade": {"low": 0.01, "high": 0.03, "log": True},
        "strategy.w_ofi": {"low": 0.2, "high": 0.8},
        "strategy.w_ai": {"one_minus": "strategy.w_ofi"},
    }})  # fmt: skip
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        v = space.sample(trial)
        seen.add(v["execution.entry_style"])
        assert ("execution.passive_ttl_s" in v) == (v["execution.entry_style"] == "passive")
        assert v["risk.max_adds"] in (0, 2, 4) and isinstance(v["risk.max_adds"], int)
        assert v["strategy.timeout_s"] % 30 == 0 and 0.01 <= v["risk.max_loss_per_trade"] <= 0.03
        assert v["strategy.w_ofi"] + v["strategy.w_ai"] == pytest.approx(1.0)
        cfg = space.apply(Config(), v)  # the models accept every sampled point
        assert (
            cfg.risk.max_adds == v["risk.max_adds"]
            and cfg.execution.entry_style == v["execution.entry_style"]
        )
        study.tell(trial, 0.0)
    assert seen == {"market", "passive"}


def test_a_point_the_models_refuse_as_a_whole_is_an_invalid_point():
    with pytest.raises(InvalidPoint, match=r"w_ofi \+ w_ai must be 1"):
        apply_values(Config(), {"strategy.w_ofi": 0.3})
    assert apply_values(Config(), {"strategy.w_ofi": 0.3, "strategy.w_ai": 0.7}).strategy.w_ofi == 0.3


def test_the_fingerprint_follows_the_space_and_its_settings():
    a = parse_space({"space": {"strategy.threshold": {"low": 0.1, "high": 0.2}}})
    b = parse_space({"space": {"strategy.threshold": {"low": 0.1, "high": 0.3}}})
    c = parse_space({"study": {"lam": 1.0}, "space": {"strategy.threshold": {"low": 0.1, "high": 0.2}}})
    assert len({a.fingerprint(), b.fingerprint(), c.fingerprint()}) == 3
    assert (
        a.fingerprint()
        == parse_space({"space": {"strategy.threshold": {"low": 0.1, "high": 0.2}}}).fingerprint()
    )


def test_feature_label_and_model_keys_are_level_b_and_share_a_study_with_backtest_keys():
    a = parse_space({"space": {"strategy.confidence_gate": {"low": 0.5, "high": 0.9}}}, "a.yaml")
    b = parse_space(
        {
            "space": {
                "strategy.confidence_gate": {"low": 0.5, "high": 0.9},
                "labels.horizon_s": {"low": 30.0, "high": 120.0},
                "features.zscore_window": {"low": 200, "high": 2000, "step": 200},
                "models.expert.lgbm_n_estimators": {"low": 20, "high": 80},
            }
        },
        "b.yaml",
    )
    assert not a.recomputes and b.recomputes
    assert [p.kind for p in b.params] == ["float", "float", "int", "int"]
