"""The documentation's links lead somewhere: every relative link in the project's Markdown
names a file that exists, and every ``#anchor`` into a Markdown file names one of its
headings, as GitHub writes a heading's anchor.

The README and docs/RESULTS.md point at runs by heading anchor (a figure's row links to
the section that measured it), and a heading reworded later breaks such links silently.

GitHub's anchor rule, from its documentation and the github-slugger package GitHub's
renderer follows: the heading's text lowercased; every character that is not a letter,
a digit, a mark, ``_``, ``-`` or a space dropped; each space (not each run) turned into
``-``; the n-th repeat of an anchor in one file suffixed ``-n``.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([*ROOT.glob("*.md"), *(ROOT / "docs").glob("*.md"), *(ROOT / "benchmarks").glob("*.md")])

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)
_LINK_TEXT = re.compile(r"\[([^\]]*)\]\([^)]*\)")


def prose(path: Path) -> str:
    """``path``'s text without its fenced code blocks (a ``#`` there is a comment, not a heading)."""
    return _FENCE.sub("", path.read_text(encoding="utf-8"))


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading, before any repeat suffix."""
    text = _LINK_TEXT.sub(r"\1", heading).lower()
    kept = (c for c in text if c in "-_ " or c.isalnum() or unicodedata.category(c).startswith("M"))
    return "".join(kept).replace(" ", "-")


@cache  # every link into a file asks again
def anchors(path: Path) -> frozenset[str]:
    """Every heading anchor of ``path``, repeats suffixed as GitHub suffixes them."""
    seen: dict[str, int] = {}
    out = set()
    for heading in _HEADING.findall(prose(path)):
        base = anchor(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return frozenset(out)


def relative_links(path: Path) -> list[str]:
    """The link targets of ``path`` that stay inside the project (no scheme, no code)."""
    text = _INLINE_CODE.sub("", prose(path))
    return [t for t in _LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def test_the_anchor_rule_matches_githubs_examples():
    # Cases from GitHub's documentation and github-slugger's own fixtures.
    assert anchor("Sample Section") == "sample-section"
    assert anchor("This'll be a _Helpful_ Section About the Greek Letter Θ!") == \
        "thisll-be-a-_helpful_-section-about-the-greek-letter-θ"
    assert anchor("Привет non-latin 你好") == "привет-non-latin-你好"
    assert anchor("a  b") == "a--b"
    assert anchor("`kgpt reproduce` on the real files (CPU, 2026-11-25)") == \
        "kgpt-reproduce-on-the-real-files-cpu-2026-11-25"


def test_repeated_headings_are_numbered(tmp_path):
    doc = tmp_path / "d.md"
    doc.write_text("# Notes\n\n```\n# Notes\n```\n\n## Notes\n\n### Notes\n", encoding="utf-8")
    assert anchors(doc) == {"notes", "notes-1", "notes-2"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_somewhere(doc):
    broken = []
    for target in relative_links(doc):
        file, _, fragment = target.partition("#")
        dest = (doc.parent / file).resolve() if file else doc
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)
