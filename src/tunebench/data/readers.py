"""One data file (JSON Lines, JSON, CSV, parquet; the JSON and CSV ones may be gzipped) -> rows.

Every decode, parse or I/O failure becomes one DataError naming the file, the line or row, and the
fix: text that is not UTF-8 (with the byte offset and the `iconv` command), binary data, a folder or
an unreadable file, JSON that breaks mid-file, a line that is no object, CSV rows with the wrong
number of fields, content in another format than the file's name says (CSV or a JSON array in a
.jsonl file, a parquet file under another name). A UTF-8 byte order mark is accepted (utf-8-sig).
`read_located` also says where each row sits (`line 3`, `row 4`), for later checks of its values.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from pathlib import Path

from tunebench.core.errors import DataError

# the file names a folder's data files may have (the format is the last suffix before .gz)
EXTENSIONS = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".csv", ".csv.gz", ".parquet")
FORMATS = {".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
TASK_FILE = "the task file"  # in a fix: the loader's check names the task file instead
_FORMAT_FIX = f"`format:` (jsonl, json, csv or parquet) under `source:` in {TASK_FILE}"


def is_data_file(path: Path) -> bool:
    return path.name.lower().endswith(EXTENSIONS)


def read_file_rows(path: Path, fmt: str, shown: str | None = None) -> list[dict]:
    return read_located(path, fmt, shown)[0]


def read_located(path: Path, fmt: str, shown: str | None = None) -> tuple[list[dict], list[str]]:
    """The rows of one file and where each one sits (`line N` for JSON Lines, `row N (line L)` for
    CSV, `item N` for a JSON list, `row N` for parquet). `shown`: the file as messages name it."""
    name = shown or str(path)
    if fmt == "parquet":
        return _parquet(path, name)
    text = _text(_bytes(path, name), name, fmt)
    if fmt == "jsonl":
        return _jsonl(text, name)
    if fmt == "json":
        return _json(text, name)
    return _csv(text, name)


def _fail(problem: str, name: str, fix: str, field: str = "source.path") -> DataError:
    return DataError(problem, file=name, field=field, fix=fix)


def _bytes(path: Path, name: str) -> bytes:
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise _fail("is a folder where a data file is expected", name,
                    "point source.path at the folder that holds it, or at one file in it") from None
    except PermissionError:
        raise _fail("cannot be read: permission denied", name,
                    f"make it readable (chmod u+r {name}) or copy it somewhere readable") from None
    except OSError as exc:
        raise _fail(f"cannot be read: {exc.strerror or exc}", name, "check the file (and the disk it is on)") from None
    if data[:2] == b"\x1f\x8b":  # gzip, whatever its name says
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise _fail(f"is a broken gzip file ({exc})", name, "download or compress it again") from None
    return data


def _text(data: bytes, name: str, fmt: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _fail("is UTF-16 text; tunebench reads UTF-8", name,
                    f"convert it: iconv -f utf-16 -t utf-8 {name} > {_utf8_name(name)}, then use that file",
                    field="line 1")
    if data.startswith(b"PAR1"):
        raise _fail(f"is a parquet file, not {fmt}", name, f"rename it to .parquet, or set {_FORMAT_FIX} to parquet",
                    field="source.format")
    head = data[:8192]
    if b"\x00" in head:
        raise _fail(f"holds binary data, not {fmt} text (first bytes {head[:16]!r})", name,
                    "point source.path at the data file itself (.jsonl, .json, .csv or .parquet), or set "
                    f"{_FORMAT_FIX} to what the file really is", field="source.format")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        bad = data[exc.start:exc.start + 1]
        # bytes 0x80-0x9f are control characters in Latin-1 but curly quotes, dashes, euro in Windows-1252
        codec = "cp1252" if any(0x80 <= b <= 0x9f for b in data) else "latin1"
        start = data.rfind(b"\n", 0, exc.start) + 1
        snippet = data[start:data.find(b"\n", exc.start) if b"\n" in data[exc.start:] else None][:80]
        raise _fail(f"is not UTF-8: byte {bad!r} at byte offset {exc.start} (line {line}, column {column}); read as "
                    f"{'Windows-1252' if codec == 'cp1252' else 'Latin-1'}, the line is {snippet.decode(codec, 'replace')!r}",
                    name, f"convert the file to UTF-8: iconv -f {codec} -t utf-8 {name} > {_utf8_name(name)}, "
                          "then point source.path at the new file", field=f"line {line}") from None


def _utf8_name(name: str) -> str:
    path = Path(name)
    return str(path.with_name(f"{path.name.split('.')[0]}-utf8{''.join(path.suffixes)}"))


def _looks_like_csv(line: str) -> bool:
    return not line.startswith(("{", "[", '"')) and any(len(line.split(d)) > 1 for d in (",", "\t", ";"))


def _jsonl(text: str, name: str) -> tuple[list[dict], list[str]]:
    rows: list[dict] = []
    places: list[str] = []
    for n, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if not line:
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            if not rows and _looks_like_csv(line):
                raise _fail(f"looks like CSV, not JSON Lines (line {n}: {line[:80]!r})", name,
                            f"set `format: csv` under `source:` in {TASK_FILE} (or rename the file to .csv)",
                            field="source.format") from None
            if not rows and (line in ("[", "{") or line.startswith("[{")):
                raise _fail(f"looks like one JSON document, not JSON Lines (line {n}: {line[:40]!r})", name,
                            f"set `format: json` under `source:` in {TASK_FILE} (or rename the file to .json), or write "
                            "one object per line", field="source.format") from None
            raise _fail(f"line {n} is not JSON ({exc.msg}, column {exc.colno})", name,
                        "one JSON object per line; fix or drop that line", field=f"line {n}") from None
        except (ValueError, RecursionError) as exc:  # a number of thousands of digits, arrays nested thousands deep
            raise _fail(f"line {n} cannot be read: {_short(exc)}", name, "fix or drop that line",
                        field=f"line {n}") from None
        if not isinstance(value, dict):
            raise _fail(f"line {n} is a JSON {_kind(value)}, not an object", name,
                        'write one object per line, like {"id": "a1", "text": "...", "label": "..."}',
                        field=f"line {n}")
        rows.append(value)
        places.append(f"line {n}")
    return rows, places


def _short(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _kind(value: object) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


def _json(text: str, name: str) -> tuple[list[dict], list[str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = (f" (it looks like JSON Lines: set `format: jsonl` under `source:` in {TASK_FILE})"
                if exc.msg == "Extra data" and exc.lineno > 1 else "")
        raise _fail(f"is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}{hint}", name,
                    "fix the JSON there (or use format: jsonl)", field=f"line {exc.lineno}") from None
    except (ValueError, RecursionError) as exc:
        raise _fail(f"cannot be read: {_short(exc)}", name, "fix the JSON") from None
    if isinstance(data, dict):
        lists = [k for k in ("data", "rows") if isinstance(data.get(k), list)]
        if not lists:
            raise _fail(f"holds a JSON object with keys {', '.join(list(data)[:8]) or '(none)'}, not a list of rows",
                        name, 'write a list of row objects, or {"data": [...]} (the key `data` or `rows`)')
        data = data[lists[0]]
    if not isinstance(data, list):
        raise _fail(f"holds a JSON {_kind(data)}, not a list of rows", name, "write a list of row objects")
    for i, item in enumerate(data, 1):
        if not isinstance(item, dict):
            raise _fail(f"item {i} is a JSON {_kind(item)}, not an object", name,
                        "every item of the list must be one row object", field=f"item {i}")
    return data, [f"item {i}" for i in range(1, len(data) + 1)]


def _csv(text: str, name: str) -> tuple[list[dict], list[str]]:
    if not text.strip():
        return [], []
    first = text.lstrip().split("\n", 1)[0]
    if first.startswith(("{", "[")):
        raise _fail(f"looks like JSON, not CSV (line 1: {first[:60]!r})", name,
                    f"set `format: jsonl` (or json) under `source:` in {TASK_FILE}, or rename the file", field="source.format")
    csv.field_size_limit(1 << 30)  # long documents are valid data: the default limit is 128 KiB
    places: list[str] = []
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader)
        line = reader.line_num
        for record in reader:
            if any(record):  # a blank line (or one of empty fields only) is no row: polars drops it too
                if len(record) != len(header):
                    raise _fail(f"row {len(places) + 1} (line {line + 1}) has {len(record)} fields but the header "
                                f"has {len(header)}", name, "quote fields that hold commas (\"a, b\") or fix that row; "
                                "tunebench reads comma-separated files", field=f"line {line + 1}")
                places.append(f"row {len(places) + 1} (line {line + 1})")
            line = reader.line_num
    except csv.Error as exc:
        raise _fail(f"is not valid CSV near line {reader.line_num}: {exc}", name, "fix the quoting there",
                    field=f"line {reader.line_num}") from None
    import polars as pl

    try:
        frame = pl.read_csv(io.BytesIO(text.encode("utf-8")), infer_schema_length=None)
        rows = [r for r in frame.to_dicts() if any(v is not None for v in r.values())]  # blank lines
    except Exception as exc:  # polars' own errors (ComputeError, ShapeError, ...)
        raise _fail(f"cannot be read as CSV: {_short(exc)}", name,
                    "fix the file (one header line, then one comma-separated row per line)") from None
    return rows, places[:len(rows)] + [f"row {i}" for i in range(len(places) + 1, len(rows) + 1)]


def _parquet(path: Path, name: str) -> tuple[list[dict], list[str]]:
    head = _bytes_head(path, name)
    if head[:4] != b"PAR1":
        what = "JSON" if head.lstrip()[:1] in (b"{", b"[") else "text" if b"\x00" not in head else "another binary format"
        raise _fail(f"is not a parquet file (it starts like {what}: {head[:16]!r})", name,
                    f"rename it to its real format (.jsonl, .json, .csv) or set {_FORMAT_FIX}", field="source.format")
    import polars as pl

    try:
        rows = pl.read_parquet(path).to_dicts()
    except Exception as exc:  # a truncated or corrupt file: polars' and arrow's own errors
        raise _fail(f"cannot be read as parquet: {_short(exc)}", name,
                    "download or write the file again (it may be truncated)") from None
    return rows, [f"row {i}" for i in range(1, len(rows) + 1)]


def _bytes_head(path: Path, name: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(64)
    except IsADirectoryError:
        raise _fail("is a folder where a data file is expected", name,
                    "point source.path at the folder that holds it, or at one file in it") from None
    except OSError as exc:
        raise _fail(f"cannot be read: {exc.strerror or exc}", name,
                    f"make it readable (chmod u+r {name}) or copy it somewhere readable") from None
