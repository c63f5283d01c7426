"""The kill-switch files: one word from the CLI or JSON from the dashboard, global or per run, the
stricter one wins, and anything unreadable halts."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderflow.engine import control as CT


def test_a_missing_file_is_off(tmp_path: Path):
    assert CT.read_kill(tmp_path / "k") == "off"
    assert CT.read_control(3, tmp_path / "k") == CT.Control("off")


def test_the_cli_word_and_the_dashboard_json_read_alike(tmp_path: Path):
    k = tmp_path / "k"
    CT.write_kill("reduce_only", k)
    assert CT.read_kill(k) == "reduce_only"
    CT.write_control("halt", who="ops@desk", why="exchange incident", path=k)
    c = CT.read_control(None, k)
    assert (c.mode, c.who, c.why) == ("halt", "ops@desk", "exchange incident")
    assert c.ts_ns > 0
    assert CT.read_kill(k) == "halt"


def test_one_run_is_set_apart_and_the_stricter_setting_wins(tmp_path: Path):
    k = tmp_path / "k"
    CT.write_control("reduce_only", who="a", why="one run", run_id=7, path=k)
    assert CT.read_control(7, k).mode == "reduce_only"
    assert CT.read_control(8, k).mode == "off"  # other runs are untouched
    CT.write_kill("halt", k)
    assert CT.read_control(7, k).mode == "halt"  # the global halt is stricter
    CT.write_kill("off", k)
    assert CT.read_control(7, k).mode == "reduce_only"


@pytest.mark.parametrize("text", ["panic", '{"mode": "sideways"}', "{not json"])
def test_unreadable_content_halts(tmp_path: Path, text: str):
    k = tmp_path / "k"
    k.write_text(text)
    assert CT.read_kill(k) == "halt"
    assert "unreadable" in CT.read_control(None, k).why


def test_a_bad_mode_is_refused_by_name(tmp_path: Path):
    with pytest.raises(ValueError, match="kill switch mode 'stop'"):
        CT.write_control("stop", who="a", why="b", path=tmp_path / "k")
