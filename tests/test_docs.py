"""The documentation is self-contained: no citation of a document outside the repository, no dead link.

Tests and benchmarks may find the EMO-DB corpus beside the repository by
default, and run folders (`runs/`) record the paths they ran with, so those
are not checked for outside paths; CI (`.ci/`) likewise puts the corpus
beside the clone for the tests. Everything else tracked by git, code
included, must not cite `DESIGN.md`, `GPU.md` or `../shared`: what the code
relies on is in docs/design.md. Relative Markdown links in README.md and
docs/*.md must point to files that exist, and their anchors (`file.md#part`,
`#part`) to headings of the file they name, as GitHub makes anchors of them.
"""

import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTSIDE_CITATIONS = ("DESIGN.md", "../shared", "GPU.md")
EXEMPT = ("tests/", "benchmarks/", "runs/", ".ci/")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def tracked_files():
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [name for name in out.decode().split("\0") if name]


def markdown_docs():
    docs = os.path.join(ROOT, "docs")
    return ["README.md"] + sorted(os.path.join("docs", name) for name in os.listdir(docs) if name.endswith(".md"))


def relative_links(text):
    """Link targets that are paths in the repository (no scheme, not a bare #anchor), anchors dropped."""
    for target in _LINK.findall(text):
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        yield target, target.split("#")[0]


def test_no_tracked_file_cites_a_document_outside_the_repository():
    offending = []
    for name in tracked_files():
        if name.startswith(EXEMPT):
            continue
        path = os.path.join(ROOT, name)
        if not os.path.isfile(path):  # deleted in the working tree, not yet committed
            continue
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            for citation in OUTSIDE_CITATIONS:
                if citation in line:
                    offending.append(f"{name}:{number}: {citation!r} in {line.strip()[:120]!r}")
    assert not offending, "Outside documents cited (write the fact into docs/ instead):\n" + "\n".join(offending)


def test_relative_links_in_readme_and_docs_point_to_existing_files():
    dead = []
    for name in markdown_docs():
        with open(os.path.join(ROOT, name), encoding="utf-8") as f:
            text = f.read()
        for target, path in relative_links(text):
            resolved = os.path.normpath(os.path.join(ROOT, os.path.dirname(name), path))
            if not os.path.exists(resolved):
                dead.append(f"{name}: ]({target}) -> {os.path.relpath(resolved, ROOT)} does not exist")
            elif os.path.commonpath([resolved, ROOT]) != ROOT:
                dead.append(f"{name}: ]({target}) leaves the repository")
    assert not dead, "\n".join(dead)


def test_the_link_check_sees_links():
    links = dict(relative_links("[a](docs/gpu.md#x) [b](https://example.org) [c](#top) [d](notes.md)"))
    assert links == {"docs/gpu.md#x": "docs/gpu.md", "notes.md": "notes.md"}
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert "docs/design.md" in dict(relative_links(readme)).values()


_HEADING = re.compile(r"^#{1,6} (.+?)\s*#*$", re.M)
_FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def heading_anchors(text):
    """The anchors GitHub gives the Markdown headings of `text` (code blocks skipped): lower case, punctuation
    but `-` and `_` dropped, spaces as `-`, a repeated one suffixed `-1`, `-2`, ...; and `<a name=...>` / `id=`."""
    seen, anchors = {}, set()
    for heading in _HEADING.findall(_FENCE.sub("", text)):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    anchors.update(re.findall(r"""<a (?:name|id)=["']([^"']+)["']""", text))
    return anchors


def test_heading_anchors_follow_github():
    text = "# A `cmd` (x, y): 1.5\n## Same\n## Same\n```\n# not a heading\n```\n<a name=\"here\"></a>"
    assert heading_anchors(text) == {"a-cmd-x-y-15", "same", "same-1", "here"}


def test_anchors_in_readme_and_docs_point_to_headings():
    dead = []
    for name in markdown_docs():
        with open(os.path.join(ROOT, name), encoding="utf-8") as f:
            text = f.read()
        for target in _LINK.findall(text):
            if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", target) or "#" not in target:
                continue
            path, anchor = target.split("#", 1)
            resolved = os.path.normpath(os.path.join(ROOT, os.path.dirname(name), path)) if path else \
                os.path.join(ROOT, name)
            if not resolved.endswith(".md") or not os.path.isfile(resolved):
                continue  # a missing file is the link test's to report
            with open(resolved, encoding="utf-8") as f:
                if anchor not in heading_anchors(f.read()):
                    dead.append(f"{name}: ]({target}): no heading of {os.path.relpath(resolved, ROOT)} has that anchor")
    assert not dead, "\n".join(dead)
