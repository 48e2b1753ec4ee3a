"""Files of an output folder (``midnite.store.files``): strict JSON read within limits."""

from __future__ import annotations

import json
import os

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
        (b"[" + b"9" * 5000 + b"]", "is not valid JSON (Exceeds the limit"),
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


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_read_json_refuses_fifos_devices_and_folders_without_hanging(tmp_path):
    os.mkfifo(tmp_path / "fifo.json")  # opening it for reading would block: no writer
    os.symlink("/dev/zero", tmp_path / "zero.json")  # would read without end
    (tmp_path / "dir.json").mkdir()
    for name in ("fifo.json", "zero.json", "dir.json"):
        with pytest.raises(files.DamagedError, match="is not a regular file"):
            files.read_json(tmp_path / name)


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


def test_atomic_writes_replace_whole_files_and_leave_no_temporary_file(tmp_path):
    files.atomic_write_text(tmp_path / "a.txt", "é one")
    assert (tmp_path / "a.txt").read_bytes() == "é one".encode()
    files.atomic_write_bytes(tmp_path / "a.txt", b"two")
    assert (tmp_path / "a.txt").read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_jsonable_makes_strict_json():
    value = {1: (1.0, float("inf"), [float("nan")]), "b": {"c": (2,)}}
    assert files.jsonable(value) == {"1": [1.0, None, [None]], "b": {"c": [2]}}
    json.dumps(files.jsonable(value), allow_nan=False)


def test_canonical_is_what_a_json_file_reads_back(tmp_path):
    key = {"size": (8, 8), 3: float("nan"), "lr": 0.05}
    files.write_json(tmp_path / "k.json", key)
    assert files.canonical(key) == files.read_json(tmp_path / "k.json")
    assert files.canonical(key) == {"size": [8, 8], "3": None, "lr": 0.05}


def test_clean_temp_removes_files_of_writers_that_are_gone(tmp_path):
    gone = tmp_path / f".a.png.p999999999.x{files.TEMP_SUFFIX}"  # no such pid
    mine = tmp_path / f".b.png.p{os.getpid()}.x{files.TEMP_SUFFIX}"
    for path in (gone, mine):
        path.write_bytes(b"half")
    assert files.clean_temp(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == [mine.name]


@pytest.mark.skipif(os.name != "posix", reason="folders are locked on POSIX only")
def test_deleting_the_lock_file_during_a_run_does_not_let_a_second_run_in(tmp_path):
    with files.lock_folder(tmp_path) as lock:
        lock.unlink()
        with pytest.raises(files.FolderBusy, match=r"\(pid unknown\)"), files.lock_folder(tmp_path):
            pass  # pragma: no cover
    with files.lock_folder(tmp_path):  # released when the block ended
        assert (tmp_path / files.LOCK_NAME).is_file()


def test_write_page_skips_identical_bytes_and_does_not_flush_the_disk(tmp_path, monkeypatch):
    flushed = []
    monkeypatch.setattr(files.os, "fsync", lambda fd: flushed.append(fd))
    page = tmp_path / "index.html"
    files.write_page(page, "<p>één</p>")
    assert page.read_text(encoding="utf-8") == "<p>één</p>" and flushed == []
    inode = page.stat().st_ino
    files.write_page(page, "<p>één</p>")  # same bytes: the file is left alone
    assert page.stat().st_ino == inode
    files.write_page(page, b"<p>two</p>")  # other bytes: replaced atomically
    assert page.read_bytes() == b"<p>two</p>" and page.stat().st_ino != inode
    assert [p.name for p in tmp_path.iterdir()] == ["index.html"]  # no temporary file left
    files.write_json(tmp_path / "r.json", {"a": 1})  # records are still flushed
    assert len(flushed) == 1
    (tmp_path / "dir.html").mkdir()
    with pytest.raises(MidniteError, match="is a folder"):
        files.write_page(tmp_path / "dir.html", "x")
