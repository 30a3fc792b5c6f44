"""Outputs appear whole or not at all."""

from __future__ import annotations

import pytest

from tunebench.core.atomic import atomic_dir, read_jsonl, write_jsonl


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, [{"a": 1}])

    def rows():
        yield {"a": 2}
        raise RuntimeError("killed halfway")

    with pytest.raises(RuntimeError):
        write_jsonl(path, rows())
    assert read_jsonl(path) == [{"a": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]


def test_failed_directory_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "out") as tmp:
        (tmp / "half.txt").write_text("x")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "whole.txt").write_text("x")
    with atomic_dir(tmp_path / "out") as tmp:  # replacing an existing directory
        (tmp / "new.txt").write_text("y")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["new.txt"]


def test_outputs_get_the_usual_permissions_not_mkstemps_0600(tmp_path):
    import stat

    from tunebench.core import atomic

    atomic.write_json(tmp_path / "a.json", {"x": 1})
    with atomic.atomic_dir(tmp_path / "d") as d:
        (d / "f").write_text("x")
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o666 & ~atomic._UMASK != 0o600
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o777 & ~atomic._UMASK != 0o700


def test_an_output_cut_short_is_named_with_the_command_that_writes_it_again(tmp_path):
    from tunebench.core.atomic import read_json, read_jsonl
    from tunebench.core.errors import DataError

    score = tmp_path / "0shot.json"
    score.write_text('{"metrics": {"accuracy": 0.5')  # cut short
    with pytest.raises(DataError) as err:
        read_json(score)
    assert err.value.file == str(score) and f"--forcerun {score}" in err.value.fix
    rows = tmp_path / "0shot.jsonl"
    rows.write_bytes(b'{"id": "a"}\n{"id": "b"}\n{"id": "c\n')
    with pytest.raises(DataError, match="on line 3"):
        read_jsonl(rows)
    rows.write_bytes(b'{"id": "a"}\n{"id": "caf\xe9"}\n')
    with pytest.raises(DataError, match="on line 2"):
        read_jsonl(rows)
