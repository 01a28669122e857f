"""Every public name the library defines at a module's top level is defined in one module only,
so that a name read anywhere says which thing it is.

The one exception is the interface a notebook's settings module (one that defines
``settings_for``) offers the notebooks, the registry and the campaign, and the vocabulary each
such module builds its profiles from (``PAPER``: the paper's settings; ``PAPER_MILESTONES``,
``PAPER_MODELS``): ``INTERFACE``'s names, the same in every such module and read qualified by
it (``offline_rl.PROFILES``).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ssmrl_lib"
INTERFACE = {"settings_for", "PROFILES", "grid", "EXPERIMENT", "MODELS",
             "PAPER", "PAPER_MILESTONES", "PAPER_MODELS"}


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


def name_clashes(package: Path) -> list[str]:
    """One line per public name defined in more than one module (``INTERFACE``'s names excepted
    where only settings modules define them)."""
    places: dict[str, list[str]] = defaultdict(list)
    settings_modules = set()
    for path in sorted(package.rglob("*.py")):
        module = str(path.relative_to(package.parent))
        for name, line in public_names(path):
            places[name].append(f"{module}:{line}")
            if name == "settings_for":
                settings_modules.add(module)
    clashes = []
    for name, where in sorted(places.items()):
        files = {place.rsplit(":", 1)[0] for place in where}
        interface = name in INTERFACE and files <= settings_modules
        if len(files) > 1 and not interface:
            clashes.append(f"{name}: {', '.join(where)}")
    return clashes


def test_public_names_are_defined_once():
    clashes = name_clashes(PACKAGE)
    assert not clashes, "public names defined in more than one module:\n" + "\n".join(clashes)


def test_the_name_reader_finds_a_clash(tmp_path):
    package = tmp_path / "ssmrl_lib"
    (package / "experiments").mkdir(parents=True)
    (package / "a.py").write_text("TASKS = {}\nPROFILES = ()\n\ndef _private():\n    pass\n")
    (package / "b.py").write_text("class TASKS:\n    pass\n_private = 1\n")
    settings = "PROFILES = {}\nSEED = 1\n\ndef settings_for():\n    pass\n"
    (package / "experiments" / "x.py").write_text(settings)
    (package / "experiments" / "y.py").write_text(settings)
    assert name_clashes(package) == [
        "PROFILES: ssmrl_lib/a.py:2, ssmrl_lib/experiments/x.py:1, ssmrl_lib/experiments/y.py:1",
        "SEED: ssmrl_lib/experiments/x.py:2, ssmrl_lib/experiments/y.py:2",
        "TASKS: ssmrl_lib/a.py:1, ssmrl_lib/b.py:1",
    ]
