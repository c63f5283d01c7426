"""Shared pieces of the importers: the report, errors naming file and line, opening compressed files."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


class ImportError_(Exception):
    """An input that cannot be imported at all (missing file, unknown format)."""


@dataclass
class ImportReport:
    """What an import did: rows written per dataset, problems found (file:line: message), gaps."""

    format: str
    files: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # rows written per venue/symbol/kind
    duplicates: dict[str, int] = field(default_factory=dict)  # rows left out: already stored
    problems: list[str] = field(default_factory=list)
    gaps: int = 0
    notes: list[str] = field(default_factory=list)

    def add_rows(self, key: str, n: int) -> None:
        if n:
            self.rows[key] = self.rows.get(key, 0) + n

    def stored(self, key: str, stats) -> None:
        """Count what one :meth:`Store.put` wrote (``stats`` is its :class:`WriteStats`)."""
        self.rows[key] = self.rows.get(key, 0) + stats.rows_written
        if stats.duplicates:
            self.duplicates[key] = self.duplicates.get(key, 0) + stats.duplicates

    @property
    def events(self) -> int:
        """Rows found in the files: written plus already stored."""
        return sum(self.rows.values()) + sum(self.duplicates.values())

    def problem(self, msg: str, limit: int = 1000) -> None:
        if len(self.problems) < limit:
            self.problems.append(msg)
        elif len(self.problems) == limit:
            self.problems.append("... more problems not listed")

    def to_dict(self) -> dict:
        return {
            "format": self.format,
            "files": self.files,
            "rows": self.rows,
            "duplicates": self.duplicates,
            "gaps": self.gaps,
            "problems": self.problems,
            "notes": self.notes,
        }


def open_binary(path: Path) -> IO[bytes]:
    """Open a plain, .gz, .bz2, .xz or single-member .zip file for reading bytes."""
    if not path.exists():
        raise ImportError_(f"{path}: no such file")
    if not path.is_file():
        raise ImportError_(f"{path}: not a file")
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".bz2"):
        return bz2.open(path, "rb")
    if name.endswith(".xz"):
        return lzma.open(path, "rb")
    if name.endswith(".zip"):
        zf = zipfile.ZipFile(path)
        members = [m for m in zf.namelist() if not m.endswith("/")]
        if len(members) != 1:
            raise ImportError_(f"{path}: zip holds {len(members)} files; expected exactly one")
        return io.BufferedReader(zf.open(members[0]))  # type: ignore[arg-type]
    return open(path, "rb")


def why_no_events(path: Path, what: str) -> str:
    """Why a file gave no events: ``file is empty``, or ``not <what> (first line: ...)`` cut to 200
    characters."""
    try:
        with open_binary(path) as fh:
            for line in fh:
                if line.strip():
                    text = line.decode("utf-8", "replace").strip()
                    return f"not {what} (first line: {text[:200]}{'...' if len(text) > 200 else ''})"
    except (EOFError, OSError, zipfile.BadZipFile) as e:
        return f"unreadable ({e})"
    return "file is empty"


def iter_lines(path: Path, report: ImportReport):
    """Yield (line_number, bytes) for each line; a truncated compressed stream is reported, not raised."""
    try:
        with open_binary(path) as fh:
            yield from enumerate(fh, 1)
    except (EOFError, OSError, zipfile.BadZipFile) as e:
        if isinstance(e, FileNotFoundError):
            raise ImportError_(f"{path}: no such file") from None
        report.problem(f"{path}: file is truncated or corrupt ({e}); lines read up to the damage were kept")
