"""The docs match the tree: every file, command and params example they name exists and works."""
import re

import pytest

from vitlab import PROJECT_ROOT
from vitlab.cli import build_parser
from vitlab.study.plans import load_plan

PAGES = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md")),
         PROJECT_ROOT / "benchmarks" / "RESULTS.md"]
# A path in the tree: under one of these folders, with no placeholder (DIR, <run_id>, ...) in it.
PATH = re.compile(r"\b((?:params|scripts|benchmarks|notebooks|docs|tests|vitlab)/[\w./-]*\w)(?![\w./<-])")
COMMAND = re.compile(r"`vitlab (\w[\w-]*)")


def named(pattern: re.Pattern) -> set[tuple[str, str]]:
    return {(page.name, m) for page in PAGES for m in pattern.findall(page.read_text())}


def test_every_page_the_readme_links_exists():
    links = re.findall(r"\]\(([^)#]+)\)", (PROJECT_ROOT / "README.md").read_text())
    assert links and [link for link in links if not (PROJECT_ROOT / link).exists()] == []


def test_every_file_the_docs_name_exists():
    missing = sorted((page, path) for page, path in named(PATH)
                     if not re.search(r"[A-Z]{2,}|<|\*", path) and not (PROJECT_ROOT / path).exists()
                     and not (PROJECT_ROOT / "vitlab" / path.removeprefix("vitlab/")).with_suffix(".py").exists())
    assert missing == []


def test_every_vitlab_command_the_docs_name_exists():
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    assert sorted((page, c) for page, c in named(COMMAND) if c not in commands) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_params_example_in_the_docs_validates(page, tmp_path):
    blocks = re.findall(r"```yaml\n(.*?)```", page.read_text(), flags=re.DOTALL)
    for i, block in enumerate(blocks):
        path = tmp_path / f"example{i}.yaml"
        path.write_text(block)
        assert load_plan(path).runs, f"{page.name}: YAML example {i + 1} plans no run"
