"""The documentation stays true: the feature catalogue is current, the README stays a short front door,
and every relative link in README.md and docs/*.md reaches a file of the repository."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
# [text](target) and [text](target "title"); images too. Code spans are removed first.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


def _links(path: Path) -> list[str]:
    return LINK.findall(CODE.sub("", path.read_text(encoding="utf-8")))


def _gen_module():
    spec = importlib.util.spec_from_file_location("gen_features_doc", ROOT / "tools" / "gen_features_doc.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_features_doc_is_current():
    expected = _gen_module().render()
    current = (ROOT / "docs" / "features.md").read_text(encoding="utf-8")
    assert current == expected, (
        "docs/features.md is stale: run `PYTHONPATH=src python tools/gen_features_doc.py > docs/features.md`"
    )


def test_features_doc_lists_every_default_feature_once():
    from orderflow.config import Config
    from orderflow.features.config import ContextFeatureConfig
    from orderflow.features.registry import default_specs
    from orderflow.features.spec import context_specs

    names = [s.name for s in default_specs(Config().features)]
    opt_in = [s.name for s in context_specs(ContextFeatureConfig())]  # the opt-in context group, after
    text = (ROOT / "docs" / "features.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \|", text, re.M)
    assert rows == names + opt_in


def test_readme_is_short():
    size = len(README.read_bytes())
    assert size < 15_000, f"README.md is {size} bytes: move detail to docs/ (figures to docs/results.md)"


def test_readme_links_nothing_outside_the_repository():
    text = README.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text
    assert not [t for t in _links(README) if ":" in t.split("/")[0]]  # no scheme (mailto:, ftp:, ...)


def test_docs_exist():
    names = {p.name for p in DOCS}
    expected = {"architecture.md", "configuration.md", "features.md", "results.md", "operations.md"}
    assert expected <= names


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_reach_files_in_the_repository(path: Path):
    bad = []
    for target in _links(path):
        if target.startswith(("http://", "https://", "#")):
            continue
        file_part = target.split("#", 1)[0]
        resolved = (path.parent / file_part).resolve()
        if not resolved.exists() or not resolved.is_relative_to(ROOT):
            bad.append(target)
    assert not bad, f"{path.name}: links to missing files or outside the repository: {bad}"
