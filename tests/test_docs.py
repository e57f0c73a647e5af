"""The README, docs/ and pipelines/ stay true: every relative link and anchor resolves, docs/spec-reference.md is
what docs/generate_spec_reference.py writes from the option models, and every template in pipelines/ loads with
the spec loader (pipelines/demo.yaml is the spec `medprobe demo` writes for site-a's brain-MRI job)."""

from __future__ import annotations

import importlib.util
import re
import types
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from medprobe.pipeline_spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _generator() -> ModuleType:
    script = ROOT / "docs" / "generate_spec_reference.py"
    spec = importlib.util.spec_from_file_location("generate_spec_reference", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    anchors = set()
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        text = line.lstrip("#").strip().lower()
        slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_and_anchors_resolve(page: Path) -> None:
    broken = []
    for target in _links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target}: no heading with anchor #{anchor}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_the_link_checker_sees_a_broken_link_and_anchor(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# A title\n\n[ok](#a-title) [bad](#nowhere) [gone](missing.md) [web](https://x.org)\n",
                    encoding="utf-8")
    assert _links(page) == ["#a-title", "#nowhere", "missing.md"]
    assert _anchors(page) == {"a-title"}


def test_spec_reference_is_generated_from_the_option_models() -> None:
    generated = _generator().render()
    current = (ROOT / "docs" / "spec-reference.md").read_text(encoding="utf-8")
    assert current == generated, "docs/spec-reference.md is stale: run python docs/generate_spec_reference.py"


def test_spec_reference_names_every_protocol_and_default() -> None:
    text = _generator().render()
    for section in ("`data.preprocessing`", "`models[]`", "`protocols.linear`", "`protocols.knn`",
                    "`protocols.robustness`", "`analysis.paired`", "`tracking`"):
        assert f"## {section}" in text
    assert "| `primary_k` | integer (≥ 1) | `20` |" in text


@pytest.mark.parametrize("path", sorted((ROOT / "pipelines").glob("*.yaml")), ids=lambda p: p.name)
def test_every_pipeline_template_loads(path: Path) -> None:
    spec = load_spec(path, environ={})
    assert spec.name and spec.protocols.enabled()


def test_the_brain_mri_template_holds_its_random_init_control() -> None:
    """The README's rule: a random-init control goes in the same pipeline, under an alias, with no weights."""
    spec = load_spec(ROOT / "pipelines" / "brain_mri_3d.yaml", environ={})
    by_name: dict[str, list[bool]] = {}
    for model in spec.models:
        by_name.setdefault(model.name, []).append(model.weights is not None)
    assert any(sorted(has) == [False, True] for has in by_name.values())


def test_demo_template_is_the_spec_the_demo_writes(tmp_path: Path) -> None:
    from medprobe.demo import runner

    out = tmp_path / "medprobe-demo"
    site = types.SimpleNamespace(name="site-a", mri_manifest=out / "data" / "site-a" / "mri" / "manifest.csv",
                                 fundus_manifest=out / "data" / "site-a" / "fundus" / "manifest.csv")
    written = runner._write_specs(out, site, robustness=False)
    demo = yaml.safe_load(next(p for p in written if p.name == "site-a-brain-mri.yaml").read_text(encoding="utf-8"))
    template = yaml.safe_load((ROOT / "pipelines" / "demo.yaml").read_text(encoding="utf-8"))
    for spec in (demo, template):  # the paths differ: the template points from pipelines/ into medprobe-demo/
        spec["data"].pop("manifest"), spec["tracking"].pop("uri"), spec.pop("workdir")
    assert template == demo
