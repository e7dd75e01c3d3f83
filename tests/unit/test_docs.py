"""The repository explains itself: every citation of a page of docs/ (``docs/protocol.md#collapse``
in code, comments, topologies, experiments and the README, and the links between the pages) names
a page that exists and a heading it has; nothing points outside the repository to ../shared."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SOURCES = ("protocol", "nodes", "coordinator", "numa_emu", "sim", "topologies", "experiments", "benchmarks", "tests")
CITATION = re.compile(r"docs/([A-Za-z0-9_.-]+\.md)(?:#([A-Za-z0-9_-]+))?")
LINK = re.compile(r"\]\(([A-Za-z0-9_.-]*\.md)?(?:#([A-Za-z0-9_-]+))?\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$", re.M)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    return {slug(h) for h in HEADING.findall(text)}


def _cited_files():
    yield ROOT / "README.md"
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".toml", ".md") and "__pycache__" not in path.parts:
                yield path


def test_every_citation_of_docs_names_a_page_and_a_heading():
    bad = []
    for path in _cited_files():
        for page, anchor in CITATION.findall(path.read_text()):
            target = DOCS / page
            if not target.is_file():
                bad.append(f"{path.relative_to(ROOT)}: docs/{page} does not exist")
            elif anchor and anchor not in anchors(target):
                bad.append(f"{path.relative_to(ROOT)}: docs/{page} has no heading #{anchor}")
    assert not bad, bad


def test_links_between_the_pages_resolve():
    bad = []
    for page in sorted(DOCS.glob("*.md")):
        for target, anchor in LINK.findall(page.read_text()):
            dest = (page.parent / target).resolve() if target else page
            if not dest.is_file():
                bad.append(f"docs/{page.name}: {target} does not exist")
            elif anchor and anchor not in anchors(dest):
                bad.append(f"docs/{page.name}: {dest.name} has no heading #{anchor}")
    assert not bad, bad


def test_nothing_points_outside_the_repository():
    bad = [str(p.relative_to(ROOT)) for p in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
           if "../shared" in p.read_text()]
    assert not bad, bad
