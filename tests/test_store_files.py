"""Files of an output folder (``midnite.store.files``): strict JSON read within limits."""

from __future__ import annotations

import json

import pytest

from midnite.errors import MidniteError
from midnite.store import files


def test_read_json_gives_the_value(tmp_path):
    files.write_json(tmp_path / "a.json", {"x": [1, 2.5, None], "y": float("nan")})
    assert files.read_json(tmp_path / "a.json") == {"x": [1, 2.5, None], "y": None}
    with pytest.raises(FileNotFoundError):
        files.read_json(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"[" * 65 + b"]" * 65, "nests 65 levels deep (at most 64 are read)"),
        (b"[" * 200_000, "nests 200000 levels deep"),
        (b'{"a": "' + b"[" * 100 + b'"}', None),  # brackets in a string do not nest
        (b"\xff\xfe", "is not UTF-8 text"),
        (b'{"a": Infinity}', "is not valid JSON (Infinity is not strict JSON"),
        (b'{"a": 1', "is not valid JSON (Expecting ',' delimiter at line 1 column 8; truncated?)"),
        (b" " * 65 + b"1", "is over 64 bytes (the limit for a midnite JSON file)"),
    ],
)
def test_read_json_refuses_what_is_beyond_its_limits(tmp_path, data, reason):
    path = tmp_path / "a.json"
    path.write_bytes(data)
    if reason is None:
        assert files.read_json(path) == {"a": "[" * 100}
        return
    with pytest.raises(files.DamagedError) as caught:
        files.read_json(path, max_bytes=64 if data.startswith(b" ") else files.MAX_JSON_BYTES)
    assert caught.value.reason.startswith(reason)
    assert str(caught.value).startswith(f"{str(path)!r} {reason}")
    assert isinstance(caught.value, MidniteError) and isinstance(caught.value, ValueError)


def test_read_json_at_the_depth_limit_reads(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("[" * 64 + "]" * 64)
    value = files.read_json(path)
    for _ in range(63):
        value = value[0]
    assert value == []
    path.write_text(json.dumps({"a": [[1]]}))
    assert files.read_json(path, max_depth=3) == {"a": [[1]]}
    with pytest.raises(files.DamagedError, match="nests 3 levels deep"):
        files.read_json(path, max_depth=2)


def test_a_folder_held_by_this_process_is_busy_for_the_next_lock(tmp_path):
    with files.lock_folder(tmp_path) as lock:
        assert lock.read_text().strip().isdigit()
        with (
            pytest.raises(files.FolderBusy, match="another midnite run is writing to"),
            files.lock_folder(tmp_path),
        ):
            pass  # pragma: no cover
    assert not (tmp_path / files.LOCK_NAME).exists()
