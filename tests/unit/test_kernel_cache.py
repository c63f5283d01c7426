"""The compiled-kernel cache follows the source: a change to a module a kernel only reads constants from
(a layout module) compiles the kernel afresh instead of running the one compiled against the old value."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

from orderflow import kernel_cache


def _package(tmp_path, value: int):
    pkg = tmp_path / "pkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "lay.py").write_text(f"X = {value}\n")
    (pkg / "k.py").write_text(
        textwrap.dedent(
            """
            from numba import njit
            from pkg import lay

            @njit(cache=True)
            def f():
                return lay.X
            """
        )
    )
    return pkg


def _run(tmp_path, pkg) -> int:
    code = (
        "from pathlib import Path; from orderflow import kernel_cache as kc; "
        f"kc.configure(Path({str(pkg)!r})); from pkg.k import f; print(f())"
    )
    env = {**os.environ, "ORDERFLOW_NUMBA_CACHE_ROOT": str(tmp_path / "cache"), "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), *sys.path])}  # fmt: skip
    env.pop("NUMBA_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip())


def test_a_changed_layout_module_recompiles_the_kernel_that_reads_it(tmp_path):
    pkg = _package(tmp_path, 1)
    assert _run(tmp_path, pkg) == 1
    assert _run(tmp_path, pkg) == 1  # from the cache
    time.sleep(0.01)
    (pkg / "lay.py").write_text("X = 2\n")  # the kernel's own file is unchanged
    assert _run(tmp_path, pkg) == 2
    # one directory per version of pkg (beside the one importing orderflow itself keyed)
    own = kernel_cache.source_key()
    assert len([d for d in (tmp_path / "cache").iterdir() if d.is_dir() and d.name != own]) == 2


def test_the_key_changes_with_any_source_file_and_only_then(tmp_path):
    pkg = _package(tmp_path, 1)
    k0 = kernel_cache.source_key(pkg)
    assert kernel_cache.source_key(pkg) == k0
    os.utime(pkg / "lay.py", ns=(1, 1))
    k1 = kernel_cache.source_key(pkg)
    assert k1 != k0
    (pkg / "new.py").write_text("")
    assert kernel_cache.source_key(pkg) != k1


def test_numba_in_this_process_uses_the_keyed_directory():
    import numba

    d = kernel_cache.configure()
    assert numba.config.CACHE_DIR == os.environ["NUMBA_CACHE_DIR"] == str(d)
    assert d.name == kernel_cache.source_key() and d.is_dir()


def test_directories_of_other_versions_unused_for_a_week_are_removed(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    old, recent = root / "old", root / "recent"
    old.mkdir(parents=True)
    recent.mkdir()
    week_ago = time.time() - kernel_cache.KEEP_S - 60
    os.utime(old, (week_ago, week_ago))
    monkeypatch.setenv("ORDERFLOW_NUMBA_CACHE_ROOT", str(root))
    d = kernel_cache.configure()
    assert not old.exists() and recent.exists() and d.exists()
    monkeypatch.undo()
    kernel_cache.configure()  # back to the suite's own cache root for later tests
