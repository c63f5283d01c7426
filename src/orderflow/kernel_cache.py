"""Where numba keeps the compiled kernels: a directory per version of the package's source.

Numba's on-disk cache (``@njit(cache=True)``) invalidates a kernel only when the file that defines it
changes. The kernels read layout constants from other modules (``strategy/layout.py``, ``engine/core.py``
...), and numba does not track those. So a ``git pull`` that changes only a layout module would run the
kernels compiled against the old indices, silently. Keying the cache directory on every source file of
the package (path, size and modification time: one ``stat`` per file) makes any change of the code
compile afresh, once, into a new directory.

``NUMBA_CACHE_DIR``, when set, is the root the keyed directory goes under. Directories of other
versions unused for a week are removed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
KEEP_S = 7 * 86_400


def source_key(root: Path = PACKAGE_DIR) -> str:
    """A digest of every ``.py`` file under ``root``: relative path, size and modification time."""
    h = hashlib.sha256(str(root).encode())
    for p in sorted(root.rglob("*.py")):
        st = p.stat()
        h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def cache_root() -> Path:
    env = os.environ.get("ORDERFLOW_NUMBA_CACHE_ROOT") or os.environ.get("NUMBA_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("orderflow")) / "numba"


def configure(package: Path = PACKAGE_DIR) -> Path:
    """Point numba at the cache directory of this version of ``package``'s source (before or after
    numba is imported)."""
    root = cache_root()
    os.environ.setdefault("ORDERFLOW_NUMBA_CACHE_ROOT", str(root))  # child processes key under it too
    d = root / source_key(package)
    d.mkdir(parents=True, exist_ok=True)
    os.utime(d)  # marks the directory as in use (pruning below)
    os.environ["NUMBA_CACHE_DIR"] = str(d)
    if "numba" in sys.modules:  # numba read its configuration at import: set it there as well
        sys.modules["numba"].config.CACHE_DIR = str(d)
    _prune(root, keep=d)
    return d


def _prune(root: Path, keep: Path) -> None:
    now = time.time()
    for other in root.iterdir():
        try:
            if other != keep and other.is_dir() and now - other.stat().st_mtime > KEEP_S:
                shutil.rmtree(other, ignore_errors=True)
        except OSError:
            pass  # another process removed it first


class Direct:
    """Call a numba dispatcher's one compiled overload straight through its entry point.

    A dispatcher resolves the numba type of every argument at every call; for tuples, NamedTuples and
    record arrays that runs in Python and costs microseconds per call, more than the kernel itself on
    the live engine's per-event path. The first call goes through the dispatcher (compiling or loading
    the cache); after it, while exactly one overload exists, calls go to that overload's entry point.
    Arguments the overload cannot take (a ``TypeError`` from unboxing) go back to the dispatcher,
    which then resolves every call again."""

    __slots__ = ("_entry", "_off", "dispatcher")

    def __init__(self, dispatcher: Any) -> None:
        self.dispatcher = dispatcher
        self._entry: Any = None
        self._off = False

    def __call__(self, *args: Any) -> Any:
        entry = self._entry
        if entry is not None:
            try:
                return entry(*args)
            except TypeError:
                self._entry, self._off = None, True
        out = self.dispatcher(*args)
        if not self._off and len(self.dispatcher.signatures) == 1:
            self._entry = self.dispatcher.overloads[self.dispatcher.signatures[0]].entry_point
        return out
