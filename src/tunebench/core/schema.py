"""JSON-schema handling for every YAML/JSON file a user writes: read it, check it, fill defaults.

One ConfigError per problem, naming the file, the field and the fix (jsonschema's own message names
neither the file nor a fix). Used by the project loader, pricing and stored baselines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tunebench.core.errors import ConfigError

SCHEMA_DIR = Path("configs") / "schema"


def load_schema(root: Path, name: str) -> dict:
    path = root / SCHEMA_DIR / name
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh) if path.suffix in (".yaml", ".yml") else json.load(fh)


def field_path(parts) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _fix_for(error: jsonschema.ValidationError) -> tuple[str, str | None, str]:
    """(problem, extra field name, fix) for one schema error."""
    kind, value, schema = error.validator, error.validator_value, error.schema
    described = f" ({schema['description']})" if isinstance(schema, dict) and "description" in schema else ""
    if kind == "required":
        missing = next((name for name in value if name not in (error.instance or {})), value[0])
        sub = schema.get("properties", {}).get(missing, {}) if isinstance(schema, dict) else {}
        desc = f" ({sub['description']})" if "description" in sub else ""
        return "required field is missing", missing, f"add `{missing}:`{desc}"
    if kind == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return (f"unknown field(s) {', '.join(map(repr, extra))}", None,
                f"remove or rename it; allowed fields: {', '.join(allowed)}")
    if kind in ("minimum", "exclusiveMinimum"):
        op = ">=" if kind == "minimum" else ">"
        return f"{error.instance!r} is too small", None, f"use a value {op} {value}{described}"
    if kind in ("maximum", "exclusiveMaximum"):
        op = "<=" if kind == "maximum" else "<"
        return f"{error.instance!r} is too large", None, f"use a value {op} {value}{described}"
    if kind in ("enum", "const"):
        choices = value if kind == "enum" else [value]
        return (f"{error.instance!r} is not allowed", None,
                f"use one of: {', '.join(map(str, choices))}{described}")
    if kind == "type":
        types = value if isinstance(value, list) else [value]
        return (f"{error.instance!r} has the wrong type", None,
                f"use a {' or '.join(types)}{described}")
    if kind == "pattern":
        return (f"{error.instance!r} is not a valid name", None,
                "use letters, digits, '_', '.' and '-' only (no spaces or slashes)")
    if kind == "minItems":
        return "the list is too short", None, f"give at least {value} item(s){described}"
    if kind == "uniqueItems":
        return "the list has duplicates", None, "list each item once"
    if kind == "minLength":
        return "the value is empty", None, f"give a non-empty value{described}"
    return error.message, None, f"see the schema{described}"


def check_schema(doc: Any, schema: dict, file: str, prefix: tuple = ()) -> None:
    """Validate `doc`; raise ConfigError for the most relevant error."""
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is None:
        return
    parent = error.parent
    if parent is not None and parent.validator in ("anyOf", "oneOf"):
        # One of several forms (e.g. a count or a fraction): the branch's complaint alone misleads.
        desc = parent.schema.get("description", "") if isinstance(parent.schema, dict) else ""
        error = parent
        problem, extra, fix = f"{parent.instance!r} is not allowed", None, f"use {desc or 'a value the schema allows'}"
    else:
        problem, extra, fix = _fix_for(error)
    parts = list(prefix) + list(error.absolute_path) + ([extra] if extra else [])
    raise ConfigError(problem, file=file, field=field_path(parts) or "(top level)", fix=fix)


def fill_defaults(doc: Any, schema: dict) -> Any:
    """Insert schema `default`s for absent properties, recursively (as snakemake's validate does)."""
    if not isinstance(doc, dict) or not isinstance(schema, dict):
        return doc
    branches = [schema]
    for sub in schema.get("allOf", []):
        cond = sub.get("if")
        if cond is not None and jsonschema.Draft202012Validator(cond).is_valid(doc):
            branches.append(sub.get("then", {}))
    for branch in branches:
        for name, sub in branch.get("properties", {}).items():
            if name not in doc and isinstance(sub, dict) and "default" in sub:
                doc[name] = json.loads(json.dumps(sub["default"]))
            if name in doc:
                fill_defaults(doc[name], sub)
        extra = branch.get("additionalProperties")
        if isinstance(extra, dict):  # a map of named entries (suites): each gets defaults
            for name, value in doc.items():
                if name not in branch.get("properties", {}):
                    fill_defaults(value, extra)
    return doc


def read_yaml(path: Path, shown: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise ConfigError(f"malformed YAML at {where}: {exc.problem}", file=shown,
                          fix="fix the YAML syntax (indentation, quotes, colons)") from None


