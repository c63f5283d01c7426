"""Atomic commits for the market-data store: one redo log per transaction under ``<root>/_txn/<id>/``.

A transaction stages every new part as ``_txn/<id>/<n>.parquet`` and notes the parts it removes and the
instrument metadata it changes. :meth:`Transaction.commit` then

1. writes ``_txn/<id>/COMMIT`` (JSON: the staged parts with their final paths, the removed parts, the new
   ``instruments.json``) under a temporary name, fsyncs it and renames it into place: the commit point;
2. applies it: every staged part is renamed to its partition, every removed part unlinked,
   ``instruments.json`` replaced;
3. deletes ``_txn/<id>/``.

A process killed before (1) leaves only its ``_txn/<id>/``: the next writer deletes it and the store is
exactly as before. Killed after (1), the next writer applies the log again (every step is idempotent)
and the store is exactly as after. Nothing outside ``_txn/`` changes before the commit point.

Only one transaction runs at a time: the writer lock ``_locks/write.lock`` (an ``flock``, released by the
kernel when its process dies, even by SIGKILL) is held from begin to end, so a ``_txn/<id>/`` found by a
process holding that lock belongs to a dead process. Readers hold ``_locks/apply.lock`` shared while they
list and read parts; step 2 holds it exclusively, so a reader never sees half of an applied commit.

``ORDERFLOW_FAULT=<point>`` makes the process SIGKILL itself at a named point (the crash tests use it):
``begin`` when a transaction starts, ``stage:N`` after the N-th staged part, ``before-commit`` when
everything is staged, ``commit`` right after the commit point, ``apply:N`` after the N-th applied part.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("orderflow.store")

COMMIT = "COMMIT"


def fault(point: str) -> None:
    """SIGKILL this process when ``ORDERFLOW_FAULT`` names ``point`` (fault injection for crash tests)."""
    if os.environ.get("ORDERFLOW_FAULT") == point:
        os.kill(os.getpid(), signal.SIGKILL)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a fsynced temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


class FileLock:
    """An ``flock`` on a file under ``<root>/_locks``; shared or exclusive, reentrant per object."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._depth = 0

    def acquire(self, exclusive: bool, blocking: bool = True) -> bool:
        if self._depth:
            self._depth += 1
            return True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:  # a read-only store: readers go without the lock
            if exclusive:
                raise
            self._depth = 1
            return True
        flags = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if blocking else fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd, self._depth = fd, 1
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @contextlib.contextmanager
    def held(self, exclusive: bool) -> Iterator[None]:
        self.acquire(exclusive)
        try:
            yield
        finally:
            self.release()


class Transaction:
    """Staged parts, removals and instrument changes of one atomic write; see the module docstring."""

    def __init__(self, root: Path, txn_dir: Path, apply_lock: FileLock) -> None:
        self.root = root
        self.dir = txn_dir
        self.apply_lock = apply_lock
        self.adds: list[tuple[Path, Path]] = []  # (staged file, final path)
        self.deletes: set[Path] = set()
        self.instruments: dict[str, dict] | None = None
        self.caches: dict[object, object] = {}  # per-partition key caches of the store's dedup

    def stage_path(self) -> Path:
        return self.dir / f"{len(self.adds):06d}.parquet"

    def add(self, staged: Path, final: Path) -> None:
        self.adds.append((staged, final))
        fault(f"stage:{len(self.adds)}")

    def unstage(self, final: Path) -> None:
        """Drop a part staged earlier in this transaction (a later write of the same source replaces it)."""
        keep = []
        for staged, fin in self.adds:
            if fin == final:
                staged.unlink(missing_ok=True)
            else:
                keep.append((staged, fin))
        self.adds = keep

    def staged_in(self, pdir: Path) -> list[tuple[Path, Path]]:
        return [(s, f) for s, f in self.adds if f.parent == pdir]

    def empty(self) -> bool:
        return not self.adds and not self.deletes and self.instruments is None

    def commit(self) -> None:
        fault("before-commit")
        if self.empty():
            shutil.rmtree(self.dir, ignore_errors=True)
            return
        for staged, _ in self.adds:  # every staged part reaches the disk before the commit point
            with open(staged, "rb") as fh:
                os.fsync(fh.fileno())
        doc = {
            "adds": [[s.name, str(f.relative_to(self.root))] for s, f in self.adds],
            "deletes": sorted(str(p.relative_to(self.root)) for p in self.deletes),
            "instruments": self.instruments,
        }
        fsync_dir(self.dir)
        write_atomic(self.dir / COMMIT, json.dumps(doc).encode())
        fault("commit")
        with self.apply_lock.held(exclusive=True):
            apply_log(self.root, self.dir)

    def abort(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def apply_log(root: Path, txn_dir: Path) -> None:
    """Carry out a committed transaction (idempotent: a half-applied log is completed), then delete it."""
    doc = json.loads((txn_dir / COMMIT).read_text())
    touched: set[Path] = set()
    for i, (staged_name, rel) in enumerate(doc["adds"], 1):
        staged, final = txn_dir / staged_name, root / rel
        if staged.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, final)
            touched.add(final.parent)
        fault(f"apply:{i}")
    for rel in doc["deletes"]:
        p = root / rel
        p.unlink(missing_ok=True)
        touched.add(p.parent)
    if doc.get("instruments") is not None:
        write_atomic(
            root / "instruments.json", json.dumps(doc["instruments"], indent=1, sort_keys=True).encode()
        )
    for d in touched:
        if d.exists():
            fsync_dir(d)
    for p in txn_dir.iterdir():  # the log goes last: a kill here leaves a log that re-applies as a no-op
        if p.name != COMMIT:
            p.unlink(missing_ok=True)
    (txn_dir / COMMIT).unlink(missing_ok=True)
    txn_dir.rmdir()


def recover(root: Path, txn_root: Path, apply_lock: FileLock) -> list[str]:
    """Finish or discard the transactions of dead processes (the caller holds the writer lock).
    Returns one line per transaction found."""
    notes = []
    if not txn_root.is_dir():
        return notes
    for d in sorted(p for p in txn_root.iterdir() if p.is_dir()):
        if (d / COMMIT).exists():
            try:
                n = len(json.loads((d / COMMIT).read_text())["adds"])
            except (OSError, ValueError, KeyError):
                n = -1
            if n < 0:  # a commit file is written atomically, so this is damage from outside
                notes.append(f"store {root}: unreadable commit log {d}; left in place, remove it by hand")
                continue
            with apply_lock.held(exclusive=True):
                apply_log(root, d)
            notes.append(
                f"store {root}: completed an interrupted commit ({n} part(s)) of transaction {d.name}"
            )
        else:
            staged = len(list(d.glob("*.parquet")))
            shutil.rmtree(d, ignore_errors=True)
            notes.append(
                f"store {root}: rolled back an interrupted write of transaction {d.name} "
                f"({staged} staged part(s) discarded; the store is as before it)"
            )
    for note in notes:
        log.warning(note)
    return notes
