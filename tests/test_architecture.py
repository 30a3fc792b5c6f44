"""The package's shape: stage folders that import downwards only, no import cycles, small modules.

The import graph is read statically (every `import`/`from ... import` of a tunebench module, also
inside functions: a deferred import is still a dependency; only `if TYPE_CHECKING:` blocks are left
out), then every module is imported in a fresh interpreter, so a cycle that only bites at import
time, or a module that cannot be imported on its own, fails here too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "tunebench"
MAX_LINES = 350
# Optional GPU or extra-only backends: importing them needs what the default install leaves out.
NEEDS_EXTRA = {"tunebench.backends.vllm_backend": "vllm", "tunebench.backends.llamacpp_backend": "llama_cpp"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            # `from pkg import module` depends on the module; `from module import name` on the module
            subs = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
            targets = subs or [base]
        for target in targets:
            # the deepest known module the name points into (`from pkg import module` names a module)
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("tunebench"):
                out.add(target)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None. A package's own __init__ importing
    its submodules is not a cycle with them unless they import the package's __init__ back."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_import_reader_sees_deferred_and_relative_imports(tmp_path):
    pkg = tmp_path / "tunebench"
    (pkg / "core").mkdir(parents=True)
    (pkg / "core" / "x.py").write_text("def f():\n    from tunebench.core import y\n")
    (pkg / "core" / "y.py").write_text("from . import x\nfrom typing import TYPE_CHECKING\n"
                                       "if TYPE_CHECKING:\n    from tunebench.core import z\n")
    known = {"tunebench.core.x", "tunebench.core.y", "tunebench.core.z", "tunebench.core"}
    assert imports_of("tunebench.core.x", pkg / "core" / "x.py", known) == {"tunebench.core.y"}
    assert imports_of("tunebench.core.y", pkg / "core" / "y.py", known) == {"tunebench.core.x"}


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_module_over_the_size_limit():
    big = {name: n for name, path in modules().items()
           if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines (split them by concept): {big}"


def test_stage_folders_hold_the_modules():
    """Every module but the package face and the command line lives in a stage folder."""
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "cli.py"]
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(STAGE_ORDER) - {"cli"}


# The stages from the bottom up: a module may import its own stage and those below it, never above.
# `config` loads a project by asking each stage to check its part, so it sits on top of them.
STAGE_ORDER = ["core", "scoring", "tasks", "data", "train", "backends", "predict", "benchmarks", "compare",
               "report", "hub", "config", "plan", "cli"]


def stage_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "core"


def test_stages_import_downwards_only():
    """A folder cycle (core importing a stage that imports core) hides even when no module cycle
    does: every import goes to the module's own stage or one below it."""
    graph = import_graph()
    assert {stage_of(m) for m in graph} - {"tunebench"} <= set(STAGE_ORDER) | {"__init__"}
    rank = {stage: i for i, stage in enumerate(STAGE_ORDER)}
    upward = sorted((name, dep) for name, deps in graph.items() for dep in deps
                    if rank.get(stage_of(dep), -1) > rank.get(stage_of(name), len(rank)))
    assert not upward, f"imports that go up the stage order {STAGE_ORDER}: {upward}"


@pytest.mark.parametrize("name", sorted(set(modules()) - set(NEEDS_EXTRA)))
def test_every_module_imports_on_its_own(name):
    proc = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_type_checker_finds_no_errors():
    """`make lint` runs mypy on src/ (configured in pyproject.toml): zero errors, here too."""
    root = SRC.parent
    proc = subprocess.run([sys.executable, "-m", "mypy"], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1000:]
    assert "Success: no issues found" in proc.stdout
