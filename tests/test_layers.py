"""The library's imports follow the layers the README states, and its layout table is the tree.

The README's "Layers" table lists the layers lowest first and the modules of each (paths under
``ssmrl_lib/``). A module may import from its own layer or from a layer below it, never from
one above. Every import counts: top-level and inside functions, ``import x`` and
``from x import y``, relative ones, and ``importlib.import_module("...")`` with a literal name.
The test reads the layer order from the README itself, so the two cannot disagree.
"""

from __future__ import annotations

import ast
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "ssmrl_lib"
ROOT_LAYER = "package root"  # ssmrl_lib/__init__.py, imported first by every module


def markdown_section(text: str, heading: str) -> str:
    """The lines under ``## heading`` up to the next heading of the same or a higher level."""
    match = re.search(rf"^(#+) {re.escape(heading)}\s*$", text, flags=re.MULTILINE)
    assert match, f"README.md has no section '{heading}'"
    level = len(match.group(1))
    rest = text[match.end():]
    end = re.search(rf"^#{{1,{level}}} ", rest, flags=re.MULTILINE)
    return rest[: end.start()] if end else rest


def table_rows(section: str) -> list[list[str]]:
    """The body rows of the first Markdown table in ``section``, as lists of cells."""
    lines: list[str] = []
    for line in (line.strip() for line in section.splitlines()):
        if line.startswith("|"):
            lines.append(line)
        elif lines:
            break
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return rows[2:]  # past the header and the |---| line


def readme_layers(readme: str) -> list[tuple[str, list[str]]]:
    """(layer, its modules as paths under ``ssmrl_lib/``), lowest layer first."""
    layers = []
    for row in table_rows(markdown_section(readme, "Layers")):
        layer = row[0].strip("`* ")
        modules = re.findall(r"`([^`]+)`", row[1])
        assert layer and modules, f"README Layers row without a layer or modules: {row}"
        layers.append((layer, modules))
    assert layers, "README.md's Layers section has no table"
    return layers


def module_key(entry: str) -> str:
    """``runs/`` and ``envs.py`` -> ``runs`` and ``envs``: the name right under the package."""
    return entry.removesuffix("/").removesuffix(".py")


def package_entries(package_dir: Path) -> dict[str, str]:
    """Name -> ``envs.py`` or ``runs/`` for every module and sub-package right under the package."""
    entries = {}
    for path in package_dir.iterdir():
        if path.suffix == ".py" and path.name != "__init__.py":
            entries[path.stem] = path.name
        elif path.is_dir() and (path / "__init__.py").exists():
            entries[path.name] = f"{path.name}/"
    return entries


@dataclass(frozen=True)
class Import:
    """One import statement's target module, where it stands in the importing file."""

    module: str  # the importing module, e.g. ssmrl_lib.report.claims
    path: Path
    line: int
    target: str  # the imported module, e.g. ssmrl_lib.report.verdicts


def module_name(path: Path, package_dir: Path) -> str:
    parts = [package_dir.name, *path.relative_to(package_dir).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, package_dir: Path) -> list[Import]:
    """Every import of a module of the package in ``path``, wherever it stands in the file."""
    name = module_name(path, package_dir)
    # A relative import counts from the module's package (an __init__ is its own package).
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []

    def add(node: ast.AST, target: str) -> None:
        if target == package_dir.name or target.startswith(package_dir.name + "."):
            found.append(Import(name, path, node.lineno, target))

    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(node, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            if source == package_dir.name:  # from ssmrl_lib import report: the names are modules
                for alias in node.names:
                    add(node, f"{source}.{alias.name}")
            else:
                add(node, source)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            add(node, node.args[0].value)
    return found


def layer_index(layers: list[tuple[str, list[str]]]) -> dict[str, tuple[int, str]]:
    """Module name right under the package -> (layer number, layer name)."""
    return {
        module_key(entry): (number, layer)
        for number, (layer, entries) in enumerate(layers)
        for entry in entries
    }


def layer_violations(package_dir: Path, layers: list[tuple[str, list[str]]]) -> list[str]:
    """One line per import of a module from a layer above the importer's own."""
    index = layer_index(layers)

    def layer_of(module: str) -> tuple[int, str]:
        parts = module.split(".")
        if len(parts) == 1:
            return (-1, ROOT_LAYER)
        if parts[1] not in index:
            raise AssertionError(f"{module} belongs to no layer of the README's Layers table")
        return index[parts[1]]

    lines = []
    for path in sorted(package_dir.rglob("*.py")):
        for found in imports_of(path, package_dir):
            (own, own_name), (other, other_name) = layer_of(found.module), layer_of(found.target)
            if other > own:
                lines.append(
                    f"{found.path.relative_to(package_dir.parent)}:{found.line}: "
                    f"{found.module} (layer {own}, {own_name}) imports {found.target} "
                    f"(layer {other}, {other_name}), a layer above its own"
                )
    return lines


@pytest.fixture(scope="module")
def layers() -> list[tuple[str, list[str]]]:
    return readme_layers((REPO / "README.md").read_text())


def test_every_module_belongs_to_exactly_one_readme_layer(layers):
    listed = [module_key(entry) for _, entries in layers for entry in entries]
    twice = sorted({name for name in listed if listed.count(name) > 1})
    assert not twice, f"README Layers table lists these in more than one layer: {twice}"
    tree = package_entries(REPO / PACKAGE)
    readme = {module_key(entry): entry for _, entries in layers for entry in entries}
    unlisted = sorted(entry for name, entry in tree.items() if name not in readme)
    absent = sorted(entry for name, entry in readme.items() if tree.get(name) != entry)
    assert not unlisted, f"ssmrl_lib/ modules in no layer of the README's Layers table: {unlisted}"
    assert not absent, f"README's Layers table names what ssmrl_lib/ does not hold: {absent}"


def test_no_module_imports_from_a_layer_above_its_own(layers):
    violations = layer_violations(REPO / PACKAGE, layers)
    order = " < ".join(layer for layer, _ in layers)
    assert not violations, f"layers (README, lowest first): {order}\n" + "\n".join(violations)


def test_the_import_reader_sees_every_kind_of_import(tmp_path):
    package = tmp_path / PACKAGE
    for folder in ("low", "high"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "base.py").write_text("")
    (package / "high" / "top.py").write_text("")
    (package / "low" / "core.py").write_text(
        "import importlib\n"
        "import ssmrl_lib.base\n"
        "from ssmrl_lib import high\n"
        "from ssmrl_lib.high.top import thing\n"
        "from . import sibling\n"
        "from ..high import top\n"
        "def later():\n"
        "    from ssmrl_lib.high import top\n"
        "    return importlib.import_module('ssmrl_lib.high.top')\n"
    )
    found = imports_of(package / "low" / "core.py", package)
    assert sorted((i.line, i.target) for i in found) == [
        (2, "ssmrl_lib.base"), (3, "ssmrl_lib.high"), (4, "ssmrl_lib.high.top"),
        (5, "ssmrl_lib.low"), (6, "ssmrl_lib.high"), (8, "ssmrl_lib.high"),
        (9, "ssmrl_lib.high.top"),
    ]
    layers = readme_layers(
        "## Layers\n\n| layer | modules |\n|---|---|\n| base | `base.py` |\n"
        "| low | `low/` |\n| high | `high/` |\n\n## Next\n"
    )
    violations = layer_violations(package, layers)
    assert len(violations) == 5  # lines 3, 4, 6, 8, 9: low imports high
    assert violations[0] == (
        "ssmrl_lib/low/core.py:3: ssmrl_lib.low.core (layer 1, low) imports ssmrl_lib.high "
        "(layer 2, high), a layer above its own"
    )
    (package / "stray.py").write_text("")
    (package / "base.py").write_text("import ssmrl_lib.stray\n")
    with pytest.raises(AssertionError, match="ssmrl_lib.stray belongs to no layer"):
        layer_violations(package, layers)


def test_readme_layout_table_matches_the_tree():
    rows = table_rows(markdown_section((REPO / "README.md").read_text(), "Layout"))
    paths = [re.findall(r"`([^`]+)`", row[0]) for row in rows]
    listed = [path for row in paths for path in row]
    absent = [path for path in listed if not (REPO / path).exists()]
    assert not absent, f"README's layout table names paths that do not exist: {absent}"
    try:
        tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                                 check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: which folders are the project's is unknown")
    folders = sorted({path.split("/")[0] + "/" for path in tracked if "/" in path})
    top = {path.split("/")[0] + "/" for path in listed} | set(listed)
    missing = [folder for folder in folders if folder not in top]
    assert not missing, f"folders of the project the README's layout table does not list: {missing}"
