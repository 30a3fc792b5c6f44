"""JSON-schema handling for every YAML/JSON file a user writes: read it, check it, fill defaults.

One ConfigError per problem, naming the file, the field and the fix (jsonschema's own message names
neither the file nor a fix). Used by the project loader, pricing and stored baselines. `read_yaml`
is the one reader of the user's YAML files: it refuses a key written twice in one mapping (YAML keeps
only the last, so a task or a setting would vanish without a word) and an empty file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tunebench.core.errors import ConfigError, article  # noqa: F401 (article: also used here)

SCHEMA_DIR = Path("configs") / "schema"
# How each JSON-schema type is named in a fix ("use an integer"), with its article.
TYPE_WORDS = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
              "array": "a list", "object": "a mapping (`field: value` lines)", "null": "null"}
BOUNDS = (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"))
# The schema of each kind of file read_yaml reads, named in the fix for an empty file.
SCHEMAS = {"config": "config.schema.yaml", "task": "task.schema.yaml", "model": "model.schema.yaml",
           "benchmark": "benchmark.schema.yaml", "prompt template": "prompt.schema.yaml",
           "training setup": "training.schema.yaml", "pricing": "pricing.schema.yaml"}
NUMBER_TEXT = re.compile(r"^\s*[-+]?(\d[\d_]*\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


class SchemaError(ConfigError):
    """A schema violation; `fields` are the dotted fields it concerns (an unknown field's own path,
    not only its parent's), so a caller can tell which of several merged config files wrote it."""

    def __init__(self, problem: str, *, file: str, field: str, fix: str, fields: list[str]):
        super().__init__(problem, file=file, field=field, fix=fix)
        self.fields = fields


def load_schema(root: Path, name: str) -> dict:
    path = root / SCHEMA_DIR / name
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh) if path.suffix in (".yaml", ".yml") else json.load(fh)


def field_path(parts) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _types(schema: Any) -> list[str]:
    kind = schema.get("type", []) if isinstance(schema, dict) else []
    return kind if isinstance(kind, list) else [kind]


def _number_text(value: Any, types: list[str]) -> tuple[str, str] | None:
    """(problem, fix) for a string that reads as a number where a number belongs: `5e-4` (YAML 1.1
    reads an exponent as a number only with a dot in the mantissa and a sign: 5.0e-4) or a quoted '0.5'."""
    if not isinstance(value, str) or not NUMBER_TEXT.match(value) or not {"integer", "number"} & set(types):
        return None
    number = float(value.replace("_", ""))
    if "number" not in types and not number.is_integer():
        return None
    if number.is_integer() and abs(number) < 1e15:
        shown = str(int(number))
    else:
        mantissa, _, exponent = value.strip().lower().lstrip("+").partition("e")
        shown = mantissa if not exponent else (
            f"{mantissa if '.' in mantissa else mantissa + '.0'}e{exponent if exponent[0] in '+-' else '+' + exponent}")
    if not isinstance(yaml.safe_load(shown), (int, float)):
        shown = repr(number)
    if isinstance(yaml.safe_load(value), (int, float)):  # it was quoted (or came from --config's text)
        return f"{value!r} is text (in quotes), not a number", f"write it without quotes: {shown}"
    return (f"{value!r} is read as text, not a number: YAML 1.1 (PyYAML, Snakemake) reads an exponent as a "
            "number only with a dot in the mantissa and a signed exponent", f"write {shown}")


def describe(schema: Any) -> str:
    """One accepted form, in words: 'an integer >= 1', '`full`', 'null'."""
    if not isinstance(schema, dict):
        return "a value"
    if "const" in schema:
        return "null" if schema["const"] is None else f"`{schema['const']}`"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{v}`" for v in schema["enum"])
    text = " or ".join(TYPE_WORDS.get(t, t) for t in _types(schema)) or "a value"
    bounds = [f"{op} {schema[key]}" for key, op in BOUNDS if key in schema]
    if bounds:
        text += " " + " and ".join(bounds)
    if "minItems" in schema:
        text += f" of at least {schema['minItems']} item(s)"
    if schema.get("properties") and "object" in _types(schema):
        text += f" with fields {', '.join(schema['properties'])}"
    return text


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
        text = _number_text(error.instance, types)
        if text:
            return text[0], None, text[1] + described
        return (f"{error.instance!r} has the wrong type", None,
                f"use {' or '.join(TYPE_WORDS.get(str(t), str(t)) for t in types)}{described}")
    if kind == "pattern" and "number" in (error.schema.get("type") or []):  # a number that may come as text
        return (f"{error.instance!r} is not a number of at least 0", None, f"write a number such as 5 or 2.5{described}")
    if kind == "pattern":
        return (f"{error.instance!r} is not a valid name", None,
                "use letters, digits, '_', '.' and '-' only (no spaces or slashes)")
    if kind == "minItems":
        return "the list is too short", None, f"give at least {value} item(s){described}"
    if kind == "maxItems":
        return "the list is too long", None, f"give at most {value} item(s){described}"
    if kind in ("minProperties", "maxProperties"):
        return "too few fields" if kind == "minProperties" else "too many fields", None, f"see the schema{described}"
    if kind == "uniqueItems":
        return "the list has duplicates", None, "list each item once"
    if kind == "minLength":
        return "the value is empty", None, f"give a non-empty value{described}"
    return error.message, None, f"see the schema{described}"


def _choice(error: jsonschema.ValidationError) -> tuple[jsonschema.ValidationError, str, str | None, str]:
    """A value allowed in one of several forms (anyOf / oneOf: a count or a fraction, `full` or an
    integer): the deepest complaint of the one form whose type fits, else every accepted form."""
    anc: jsonschema.ValidationError | None = error
    while anc is not None and anc.validator not in ("anyOf", "oneOf"):
        anc = anc.parent
    if anc is None:
        return (error, *_fix_for(error))
    branches = anc.validator_value
    fitting = [i for i, b in enumerate(branches) if isinstance(b, dict) and "type" in b
               and jsonschema.Draft202012Validator({"type": b["type"]}).is_valid(anc.instance)]
    own = [e for e in anc.context or [] if fitting and e.schema_path and e.schema_path[0] == fitting[0]]
    nested = len(fitting) == 1 and {"object", "array"} & set(_types(branches[fitting[0]]))
    if nested and own:  # a mapping or list of the one fitting form: its own complaint is concrete
        deep = jsonschema.exceptions.best_match(own)
        return (deep, *_fix_for(deep))
    desc = anc.schema.get("description") if isinstance(anc.schema, dict) else None
    forms = [describe(b) for b in branches]
    fix = "use " + (forms[0] if len(forms) == 1 else ", ".join(forms[:-1]) + " or " + forms[-1])
    text = _number_text(anc.instance, [t for b in branches for t in _types(b)])
    if text:
        return anc, text[0], None, text[1]
    return anc, f"{anc.instance!r} is not allowed", None, fix + (f" ({desc})" if desc else "")


def check_schema(doc: Any, schema: dict, file: str, prefix: tuple = ()) -> None:
    """Validate `doc`; raise a SchemaError (a ConfigError) for the most relevant error."""
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is None:
        return
    error, problem, extra, fix = _choice(error)
    parts = list(prefix) + list(error.absolute_path) + ([extra] if extra else [])
    fields = [field_path(parts)]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        fields = [field_path([*parts, name]) for name in sorted(set(error.instance) - allowed)] or fields
    raise SchemaError(problem, file=file, field=field_path(parts) or "(top level)", fix=fix, fields=fields)


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


def _duplicate_key(node: yaml.Node, path: tuple = ()) -> tuple[str, int, int] | None:
    """(dotted key, first line, second line) of the first key written twice in one mapping."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                line = key.start_mark.line + 1
                if (key.tag, key.value) in seen:
                    return field_path([*path, key.value]), seen[(key.tag, key.value)], line
                seen[(key.tag, key.value)] = line
            found = _duplicate_key(value, (*path, key.value if isinstance(key, yaml.ScalarNode) else "?"))
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found = _duplicate_key(item, (*path, i))
            if found:
                return found
    return None


def read_yaml(path: str | Path, shown: str, kind: str = "file") -> dict:
    """A YAML file that must hold a mapping (every config, task, model, prompt, training and pricing
    file): malformed YAML, a key written twice and an empty file are one ConfigError each. `kind`
    names what the file describes in the fix (e.g. "task")."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:  # a folder, no permission, an unreadable disk
        raise ConfigError(f"cannot be read: {exc.strerror or exc}", file=shown,
                          fix="point it at a readable YAML file") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(f"is not UTF-8: byte {raw[exc.start:exc.start + 1]!r} on line {line}", file=shown,
                          fix=f"save it as UTF-8 (e.g. iconv -f latin1 -t utf-8 {shown} > fixed.yaml, then "
                              "move fixed.yaml over it)") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        doc = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise ConfigError(f"malformed YAML at {where}: {exc.problem}", file=shown,
                          fix="fix the YAML syntax (indentation, quotes, colons)") from None
    except yaml.YAMLError as exc:  # the reader's own: a control character, a NUL byte (a binary file)
        at = getattr(exc, "position", None)
        where = f" on line {text[:at].count(chr(10)) + 1}" if isinstance(at, int) else ""
        raise ConfigError(f"is not a YAML text file: {getattr(exc, 'reason', None) or exc}{where}", file=shown,
                          fix="remove the control characters (or point it at the YAML file meant)") from None
    duplicate = node is not None and _duplicate_key(node)
    if duplicate:
        key, first, second = duplicate
        raise ConfigError(f"`{key.rsplit('.', 1)[-1]}` is written twice, on lines {first} and {second}; "
                          "YAML would keep only the second and drop the first without a word",
                          file=shown, field=key, fix=f"keep one of them (merge the two into the one on line {first})")
    schema = SCHEMAS.get(kind)
    fix = f"write the {kind} as `field: value` lines" + (f" (its fields: {SCHEMA_DIR / schema})" if schema else "")
    if doc is None:
        raise ConfigError("the file is empty (or only comments)", file=shown, field="(top level)", fix=fix)
    if not isinstance(doc, dict):
        raise ConfigError(f"expected a mapping of fields, got {type(doc).__name__}", file=shown,
                          field="(top level)", fix=fix)
    return doc
