"""The layout shows the architecture: three wings whose imports run one way, docs/code.md's
module tables are the tree, and modules stay small."""
import ast
import graphlib
import re

from vitlab import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "vitlab"
# Each module by its dotted name under vitlab ("run.train", "cli").
MODULES = sorted(".".join(p.relative_to(PACKAGE).with_suffix("").parts) for p in PACKAGE.rglob("*.py")
                 if p.stem != "__init__")
WINGS = ("run", "study", "report")  # each may import those before it, never those after
# A module longer than this says why in its opening docstring ("Longer than ... because ...").
MAX_LINES = 360


def path(name: str):
    return (PACKAGE / name.replace(".", "/")).with_suffix(".py")


def test_docs_list_every_module_once_in_its_wing_with_its_job():
    page = (PROJECT_ROOT / "docs" / "code.md").read_text()
    section = page.split("## The code", 1)[1].split("\n## ", 1)[0]
    listed = []
    for table in re.split(r"^### ", section, flags=re.MULTILINE)[1:]:
        folder = re.match(r"`vitlab/([\w/]*?)/?`", table)
        assert folder, f"a table of modules without its folder: {table.splitlines()[0]}"
        prefix = f"{folder.group(1).replace('/', '.')}." if folder.group(1) else ""
        listed += [prefix + m for m in re.findall(r"^\| `(\w+)` \| \S.*\|$", table, flags=re.MULTILINE)]
    assert sorted(listed) == MODULES and len(listed) == len(set(listed))


def test_every_module_is_small_or_says_why():
    for name in MODULES:
        source = path(name).read_text()
        doc = ast.get_docstring(ast.parse(source)) or ""
        assert doc, f"{name}: no opening docstring"
        lines = source.count("\n")
        assert lines <= MAX_LINES or "Longer than" in doc, f"{name}: {lines} lines and no reason given"


def imports(name: str) -> set[str]:
    """The vitlab modules a module imports, at its top or inside its functions."""
    found = set()
    for node in ast.walk(ast.parse(path(name).read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vitlab"):
            base = node.module.removeprefix("vitlab").removeprefix(".")
            for a in node.names:  # "from vitlab.run import train" names a module, "from vitlab.run.train import fit" does not
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}".lstrip(".") in MODULES else base)
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("vitlab.") for a in node.names if a.name.startswith("vitlab.")}
    return {m.lstrip(".") for m in found if m.lstrip(".")} - {name}


def test_imports_run_one_way_between_the_wings():
    """run imports nothing from study or report, study nothing from report: each wing can be read,
    tested and reused without those after it."""
    crossing = []
    for name in MODULES:
        wing = name.split(".")[0]
        if wing not in WINGS:
            continue
        later = WINGS[WINGS.index(wing) + 1:]
        crossing += [f"{name} imports {m}" for m in imports(name) if m.split(".")[0] in later]
    assert crossing == []


def test_the_import_rule_sees_an_import_that_breaks_it():
    assert "report.claims" in imports("report.sections") and "study.results" in imports("report.sections")
    assert "run.step" in imports("run.memory") and "run.train" not in imports("run.memory")


def test_imports_run_one_way():
    """No circle among vitlab's modules, not even through an import inside a function (memory
    and train once imported each other; the training step they share is its own module now)."""
    graph = {name: imports(name) for name in MODULES}
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as e:
        raise AssertionError(f"import circle: {' -> '.join(e.args[1])}") from None


def test_no_test_module_imports_another():
    """Shared helpers live in tests/helpers.py or conftest.py, so a test file runs alone."""
    offenders = [p.name for p in (PROJECT_ROOT / "tests").glob("test_*.py")
                 if re.search(r"^(from tests\.test_|import tests\.test_)", p.read_text(), re.MULTILINE)]
    assert offenders == []
