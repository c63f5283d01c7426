"""Registry integrity: checksums recorded at registration and verified on load, a cache that is rebuilt
when it does not match (never left broken by a failed load), artifacts found relative to the registry
root (a registry directory can be copied or moved), and one line naming the version and the file for
every broken artifact, on the API and on the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_registry import lr_onnx, make_bundle, probe

from orderflow.cli import main
from orderflow.models.registry import (
    CACHE_STAMP,
    CHECKSUMS_TAG,
    DEFAULT_MODEL_NAME,
    LOCATION_TAG,
    Registry,
    RegistryError,
)
from orderflow.models.serving import BundleError, EnsembleModel, HotReloader


def artifacts(reg: Registry, version: str) -> Path:
    """The stored bundle directory of a version (inside the registry root)."""
    mv = reg.client.get_model_version(DEFAULT_MODEL_NAME, version)
    return reg.root / "artifacts" / mv.run_id / "artifacts" / "bundle"


def truncate(path: Path) -> bytes:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return data


def one_line(msg: str) -> str:
    assert "\n" not in msg.strip() and "Traceback" not in msg, msg
    return msg


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A registry holding version 1 (creating an MLflow database is slow: each test copies this)."""
    root = tmp_path_factory.mktemp("template")
    assert Registry(root / "reg").register(make_bundle(root / "b1", +1.0)) == "1"
    return root / "reg"


@pytest.fixture
def reg(template: Path, tmp_path: Path) -> Registry:
    shutil.copytree(template, tmp_path / "reg")
    return Registry(tmp_path / "reg")


@pytest.mark.slow
def test_checksums_are_recorded_for_every_artifact(reg, tmp_path):
    mv = reg.client.get_model_version(DEFAULT_MODEL_NAME, "1")
    sums = json.loads(mv.tags[CHECKSUMS_TAG])
    assert set(sums) == {"bundle.json", "lr.onnx"} and all(len(h) == 64 for h in sums.values())
    assert not Path(mv.tags[LOCATION_TAG]).is_absolute()
    assert (reg.root / mv.tags[LOCATION_TAG] / "lr.onnx").is_file()


def test_a_load_while_an_onnx_is_missing_does_not_poison_the_cache(reg):
    onnx = artifacts(reg, "1") / "lr.onnx"
    good = onnx.read_bytes()
    onnx.unlink()
    with pytest.raises(RegistryError) as err:
        reg.load_bundle("1")
    msg = one_line(str(err.value))
    assert msg.startswith("orderflow-ensemble version 1: artifact lr.onnx: missing from ")
    onnx.write_bytes(good)  # the file is restored: the very next load works
    model = EnsembleModel.from_bundle(reg.load_bundle("1"), "schema-A")
    assert model.predict(probe()).shape == (5, 3)


def test_a_cache_that_does_not_match_is_rebuilt(reg, tmp_path):
    expected = EnsembleModel.from_bundle(reg.load_bundle("1"), "schema-A").predict(probe())
    cached = reg.load_bundle("1")
    damage = [
        lambda: (cached / "lr.onnx").unlink(),  # partly materialised
        lambda: truncate(cached / "lr.onnx"),  # changed under the cache
        lambda: (cached / "bundle.json").write_text("{}"),
        lambda: (cached / CACHE_STAMP).unlink(),  # an unfinished copy (the stamp is written last)
        lambda: shutil.rmtree(cached),
    ]
    for hurt in damage:
        hurt()
        again = reg.load_bundle("1")
        assert again == cached
        got = EnsembleModel.from_bundle(again, "schema-A").predict(probe())
        np.testing.assert_allclose(got, expected, atol=1e-12)
    assert [p.name for p in cached.parent.iterdir()] == ["v1"]  # no staging leftovers


def test_a_truncated_onnx_is_one_line_naming_version_and_file(reg, tmp_path):
    truncate(artifacts(reg, "1") / "lr.onnx")
    with pytest.raises(RegistryError) as err:
        reg.load_bundle("1")
    assert one_line(str(err.value)).startswith(
        "orderflow-ensemble version 1: artifact lr.onnx: checksum mismatch (file changed or truncated)"
    )
    assert not (reg.cache_dir / DEFAULT_MODEL_NAME / "v1").exists()


def test_a_bundle_changed_after_it_was_cached_is_refused_by_serving(reg, tmp_path):
    cached = reg.load_bundle("1")
    truncate(cached / "lr.onnx")  # e.g. `--model <cache dir>`, or a change between load and serve
    with pytest.raises(RegistryError, match=r"version 1: artifact lr\.onnx: checksum mismatch"):
        EnsembleModel.from_bundle(cached, "schema-A")
    plain = make_bundle(tmp_path / "plain", +1.0)  # a bundle directory outside any registry
    truncate(plain / "lr.onnx")
    with pytest.raises(BundleError) as err:
        EnsembleModel.from_bundle(plain, "schema-A")
    msg = one_line(str(err.value))
    assert str(plain / "lr.onnx") in msg and "corrupt or truncated" in msg


def test_registration_refuses_a_truncated_onnx(reg, tmp_path):
    b = make_bundle(tmp_path / "b", +1.0)
    truncate(b / "lr.onnx")
    with pytest.raises(RegistryError, match=r"artifact lr\.onnx: not a loadable ONNX graph"):
        reg.register(b)
    assert [r["version"] for r in reg.ls()] == ["1"]


@pytest.mark.slow
def test_a_copied_or_moved_registry_loads_from_its_new_place_only(tmp_path):
    reg = Registry(tmp_path / "reg")  # its own database: nothing may lead back to the original
    assert reg.register(make_bundle(tmp_path / "b1", +1.0)) == "1"
    want = EnsembleModel.from_bundle(reg.load_bundle("1"), "schema-A").predict(probe())
    shutil.copytree(tmp_path / "reg", tmp_path / "reg2")  # cp -r reg reg2
    shutil.rmtree(tmp_path / "reg")
    copy = Registry(tmp_path / "reg2")
    got = copy.load_bundle("1")
    assert got.is_relative_to(tmp_path / "reg2")
    shutil.rmtree(copy.cache_dir)  # rebuilt from the copy's own artifacts
    got = copy.load_bundle("1")
    np.testing.assert_allclose(EnsembleModel.from_bundle(got, "schema-A").predict(probe()), want)
    assert copy.register(make_bundle(tmp_path / "b2", -1.0)) == "2"  # new artifacts land in the copy
    assert (artifacts(copy, "2") / "lr.onnx").is_file() and not (tmp_path / "reg").exists()
    (tmp_path / "reg2").rename(tmp_path / "reg3")  # mv reg2 reg3
    moved = Registry(tmp_path / "reg3")
    shutil.rmtree(moved.cache_dir)
    for v in ("1", "2"):
        assert moved.load_bundle(v).is_relative_to(tmp_path / "reg3")
        assert artifacts(moved, v).is_relative_to(tmp_path / "reg3")
    assert not (tmp_path / "reg").exists() and not (tmp_path / "reg2").exists()


def test_versions_registered_before_checksums_stay_readable(reg, tmp_path):
    """A version without the integrity tags (what the former code wrote: an absolute source URI,
    no checksums, a cache without a stamp) still loads, from a copied registry too, and is checked."""
    for tag in (CHECKSUMS_TAG, LOCATION_TAG):
        reg.client.delete_model_version_tag(DEFAULT_MODEL_NAME, "1", tag)
    old_cache = reg.cache_dir / DEFAULT_MODEL_NAME / "v1"  # the former code's cache: missing a file
    shutil.copytree(artifacts(reg, "1"), old_cache)
    (old_cache / "lr.onnx").unlink()
    assert (reg.load_bundle("1") / "lr.onnx").is_file()
    shutil.copytree(tmp_path / "reg", tmp_path / "copy")
    shutil.rmtree(tmp_path / "reg")
    copy = Registry(tmp_path / "copy")
    shutil.rmtree(copy.cache_dir)
    assert copy.load_bundle("1").is_relative_to(tmp_path / "copy")
    shutil.rmtree(copy.cache_dir)
    truncate(artifacts(copy, "1") / "lr.onnx")
    with pytest.raises(RegistryError) as err:
        copy.load_bundle("1")
    assert one_line(str(err.value)).startswith(
        "orderflow-ensemble version 1: artifact lr.onnx: not a loadable ONNX graph (corrupt or truncated)"
    )
    shutil.rmtree(artifacts(copy, "1"))  # not in the copy: the stored absolute source is the fallback
    source = Path(copy.client.get_model_version(DEFAULT_MODEL_NAME, "1").source.removeprefix("file://"))
    assert source.is_dir() and not source.is_relative_to(tmp_path)  # this module's template registry
    assert (copy.load_bundle("1") / "lr.onnx").read_bytes() == (source / "lr.onnx").read_bytes()


def test_a_missing_artifact_directory_is_named(reg):
    shutil.rmtree(artifacts(reg, "1"))
    with pytest.raises(RegistryError) as err:
        reg.load_bundle("1")
    assert one_line(str(err.value)) == (
        f"orderflow-ensemble version 1: artifacts missing: no directory {artifacts(reg, '1')}"
    )


@pytest.mark.slow
def test_hot_reloader_retries_a_version_whose_artifact_was_missing(reg, tmp_path):
    now = [0]
    reloader = HotReloader(Registry(tmp_path / "reg"), "champion", "schema-A", poll_s=60,
                           clock=lambda: now[0], retry_s=30)  # fmt: skip
    reg.promote("1")
    onnx = artifacts(reg, "1") / "lr.onnx"
    good = onnx.read_bytes()
    onnx.unlink()
    shutil.rmtree(reg.cache_dir)
    assert not reloader.check_now() and reloader.current_version is None
    assert "version 1: artifact lr.onnx: missing" in reloader.events[-1].error
    onnx.write_bytes(good)
    now[0] += 29 * 10**9
    assert not reloader.check_now() and len(reloader.events) == 1  # not before retry_s
    now[0] += 2 * 10**9
    assert reloader.check_now() and reloader.current_version == "1"
    np.testing.assert_allclose(reloader.predict(probe()), lr_onnx(tmp_path / "ref.onnx", +1.0), atol=1e-5)


@pytest.mark.slow
def test_cli_names_the_version_and_the_file(reg, template, tmp_path, capsys):
    r = str(tmp_path / "reg")
    store = str(tmp_path / "store")
    truncate(artifacts(reg, "1") / "lr.onnx")
    assert main(["data", "simulate", "--hours", "0.2", "--seed", "3", "--store", store]) == 0
    capsys.readouterr()
    commands = [
        ["models", "evaluate", "1", "--registry", r],
        ["backtest", "sim/BTCUSDT", "--store", store, "--model", "1", "--registry", r],
        ["paper", "--model", "1", "--registry", r, "--minutes", "0.1", "--db", str(tmp_path / "j.db")],
    ]
    for argv in commands:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("orderflow: "), (argv, err)
        assert "orderflow-ensemble version 1: artifact lr.onnx: checksum mismatch" in err, (argv, err)
    plain = make_bundle(tmp_path / "plain", +1.0)  # `--model DIR` outside the registry
    truncate(plain / "lr.onnx")
    shutil.rmtree(reg.cache_dir)
    shutil.copytree(template / "artifacts", tmp_path / "reg" / "artifacts", dirs_exist_ok=True)  # intact
    refusals = [
        (["backtest", "sim/BTCUSDT", "--store", store, "--model", "1", "--registry", r],
         "--model 1: ", "feature schema hash schema-A != expected"),  # trained on other features
        (["paper", "--model", str(plain), "--minutes", "0.1", "--db", str(tmp_path / "j.db")],
         f"--model {plain}: {plain / 'lr.onnx'}: member 'lr'", "(corrupt or truncated ONNX graph)"),
    ]  # fmt: skip
    for argv, head, tail in refusals:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("orderflow: " + head) and tail in err, (argv, err)
