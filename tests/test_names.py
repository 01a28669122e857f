"""Every public name the library defines at a module's top level is defined in one module only,
so that a name read anywhere says which thing it is.

The one exception is the interface each experiment module offers the registry, the campaign and
the notebooks (``grid``, ``settings_for``, ``PROFILES``, ...): the same names in every module of
``ssmrl_lib/experiments/``, always read qualified by the module (``offline_rl.PROFILES``).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ssmrl_lib"
EXPERIMENTS = PACKAGE / "experiments"


def public_names(path: Path) -> list[tuple[str, int]]:
    """(name, line) of every class, function and variable the module defines at top level."""
    names = []
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            targets = [node.name]
        elif isinstance(node, ast.Assign):
            targets = [n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets = [node.target.id]
        else:
            continue
        names += [(name, node.lineno) for name in targets if not name.startswith("_")]
    return names


def name_clashes(package: Path, interface_dir: Path) -> list[str]:
    """One line per public name defined in more than one module (the experiment interface
    excepted where only experiment modules share it)."""
    places: dict[str, list[str]] = defaultdict(list)
    for path in sorted(package.rglob("*.py")):
        for name, line in public_names(path):
            places[name].append(f"{path.relative_to(package.parent)}:{line}")
    clashes = []
    for name, where in sorted(places.items()):
        files = {place.rsplit(":", 1)[0] for place in where}
        interface = all(Path(package.parent, f).parent == interface_dir for f in files)
        if len(files) > 1 and not interface:
            clashes.append(f"{name}: {', '.join(where)}")
    return clashes


def test_public_names_are_defined_once():
    clashes = name_clashes(PACKAGE, EXPERIMENTS)
    assert not clashes, "public names defined in more than one module:\n" + "\n".join(clashes)


def test_the_name_reader_finds_a_clash(tmp_path):
    package = tmp_path / "ssmrl_lib"
    (package / "experiments").mkdir(parents=True)
    (package / "a.py").write_text("TASKS = {}\n\ndef _private():\n    pass\n")
    (package / "b.py").write_text("class TASKS:\n    pass\n_private = 1\n")
    (package / "experiments" / "x.py").write_text("def grid():\n    pass\n")
    (package / "experiments" / "y.py").write_text("def grid():\n    pass\n")
    assert name_clashes(package, package / "experiments") == [
        "TASKS: ssmrl_lib/a.py:1, ssmrl_lib/b.py:1"
    ]
