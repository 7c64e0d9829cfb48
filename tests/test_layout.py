"""The layout shows the architecture: docs/code.md's module table is the tree, and modules stay small."""
import ast
import graphlib
import re

from vitlab import PROJECT_ROOT

MODULES = sorted(p.stem for p in (PROJECT_ROOT / "vitlab").glob("*.py") if p.stem != "__init__")
# A module longer than this says why in its opening docstring ("Longer than ... because ...").
MAX_LINES = 360


def test_readme_lists_every_module_once_with_its_job():
    page = (PROJECT_ROOT / "docs" / "code.md").read_text()
    section = page.split("## The code", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `(\w+)` \| \S.*\|$", section, flags=re.MULTILINE)
    assert sorted(listed) == MODULES and len(listed) == len(set(listed))


def test_every_module_is_small_or_says_why():
    for name in MODULES:
        source = (PROJECT_ROOT / "vitlab" / f"{name}.py").read_text()
        doc = ast.get_docstring(ast.parse(source)) or ""
        assert doc, f"{name}.py has no opening docstring"
        lines = source.count("\n")
        assert lines <= MAX_LINES or "Longer than" in doc, f"{name}.py: {lines} lines and no reason given"


def imports(name: str) -> set[str]:
    """The vitlab modules a module imports, at its top or inside its functions."""
    found = set()
    for node in ast.walk(ast.parse((PROJECT_ROOT / "vitlab" / f"{name}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "vitlab":
            found |= {a.name for a in node.names if a.name in MODULES}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vitlab."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("vitlab.")}
    return found - {name}


def test_imports_run_one_way():
    """No circle among vitlab's modules, not even through an import inside a function (memory
    and train once imported each other; the training step they share is its own module now)."""
    graph = {name: imports(name) for name in MODULES}
    assert graph["memory"] >= {"step"} and "train" not in graph["memory"]
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as e:
        raise AssertionError(f"import circle: {' -> '.join(e.args[1])}") from None


def test_no_test_module_imports_another():
    """Shared helpers live in tests/helpers.py or conftest.py, so a test file runs alone."""
    offenders = [p.name for p in (PROJECT_ROOT / "tests").glob("test_*.py")
                 if re.search(r"^(from tests\.test_|import tests\.test_)", p.read_text(), re.MULTILINE)]
    assert offenders == []
