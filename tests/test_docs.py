"""The user-facing markdown stays true to the repository: every relative link in README.md and
docs/*.md (and the other top-level guides) points at a file that exists, and at a heading that
exists when it names one; docs/models.md's model table is `python -m bench.model_table`'s output;
README.md keeps the test command `.ci/run` extracts."""

import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", ROOT / "BENCHMARKS.md", ROOT / "examples" / "README.md",
               *(ROOT / "docs").glob("*.md")])

FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target); the target ends at whitespace or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def _prose(text):
    """Markdown without fenced code blocks and inline code (whose brackets are not links)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def anchors(text):
    """GitHub's anchors for the headings of a markdown text."""
    slugs = set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        heading = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # formatting, links
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        slugs.add(slug)
    return slugs


def broken_links(path):
    """['target (why)', ...] for the relative links of markdown file `path` that lead nowhere."""
    text = path.read_text(encoding="utf-8")
    broken = []
    for target in LINK.findall(_prose(text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:, ...
            continue
        file_part, _, fragment = target.partition("#")
        destination = (path.parent / file_part).resolve() if file_part else path
        if not destination.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and destination.suffix == ".md" and fragment not in anchors(
                destination.read_text(encoding="utf-8")):
            broken.append(f"{target} (no heading #{fragment} in {destination.name})")
    return broken


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_relative_links_resolve(path):
    assert broken_links(path) == []


def test_link_check_finds_broken_links(tmp_path):
    """The check above can fail: a missing file, a missing heading, a link in prose only."""
    (tmp_path / "there.md").write_text("# A heading\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md) [ok](there.md#a-heading) [ok](#local) [web](https://example.com/x)\n"
        "[gone](missing.md) ![gone](figures/missing.png) [bad anchor](there.md#no-such)\n"
        "`[not a link](nowhere.md)`\n\n```\n[not a link](nowhere.md)\n```\n\n## Local\n")
    assert broken_links(page) == [
        "missing.md (no such file)",
        "figures/missing.png (no such file)",
        "there.md#no-such (no heading #no-such in there.md)",
    ]


def test_models_doc_table_is_bench_model_table():
    """docs/models.md holds `python -m bench.model_table`'s table of bench/results/model_table.json."""
    from bench import model_table

    rows = json.loads((ROOT / "bench" / "results" / "model_table.json").read_text())["models"]
    doc = (ROOT / model_table.DOC).read_text(encoding="utf-8")
    assert model_table.doc_table(doc) == model_table.markdown(rows)
    # The rewrite `python -m bench.model_table` does keeps the rest of the document.
    assert model_table.replace_doc_table(doc, model_table.markdown(rows)) == doc
    assert model_table.replace_doc_table("a\n<!-- model-table -->\nold\n<!-- /model-table -->\nb\n",
                                         "new") == "a\n<!-- model-table -->\nnew\n<!-- /model-table -->\nb\n"
    with pytest.raises(ValueError):
        model_table.doc_table("no markers here")


def test_readme_keeps_the_ci_test_command():
    """`.ci/run` runs the first `python3 -m venv` line after <!-- test-command --> (its awk, in Python)."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    after = lines[lines.index("<!-- test-command -->") + 1:]
    command = next((line for line in after if line.startswith("python3 -m venv")), None)
    assert command is not None and "pytest" in command
