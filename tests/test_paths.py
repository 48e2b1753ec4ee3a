"""Paths under an output folder (``midnite.store.paths``): one component per name, no symlinks
on the way when writing."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from midnite.errors import UsageError
from midnite.store import atomic_write_bytes
from midnite.store.paths import PathError, component, inside


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("/etc/passwd", "without '/', got '/etc/passwd'"),
        ("../x", "without '/', got '../x'"),
        ("a/b", "without '/', got 'a/b'"),
        ("..\\x", "without '\\', got '..\\\\x'"),
        ("C:\\Windows", "without '\\', got 'C:\\\\Windows'"),
        ("a\0b", "without NUL"),
        ("..", "must be a file or folder name, got '..'"),
        (".", "must be a file or folder name, got '.'"),
        ("", "must be a file or folder name, got ''"),
        ("x" * 256, "at most 255 bytes in UTF-8, got 256 bytes"),
        ("é" * 128, "at most 255 bytes in UTF-8, got 256 bytes"),
        (5, "must be a string, got int: 5"),
    ],
)
def test_a_name_that_is_not_one_component_is_refused(name, words):
    with pytest.raises(PathError, match=re.escape(words)):
        component(name)
    with pytest.raises(UsageError):
        inside("/tmp", "ok", name)


@pytest.mark.parametrize("name", ["x" * 255, "é" * 127, "a\u2215b", "a\uff0fb", "..a", ".hidden"])
def test_other_names_are_plain_components(name):
    assert component(name) == name
    assert inside("root", name) == Path("root") / name


def test_the_error_names_which_component(tmp_path):
    with pytest.raises(PathError, match=r"path component 2 must be one path component"):
        inside(tmp_path, "layer", "../../x.png")


def checksum(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        h.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def test_nothing_is_written_through_a_symlinked_layer_folder(tmp_path):
    root, watched = tmp_path / "out", tmp_path / "watched"
    (root / "conv").mkdir(parents=True)
    watched.mkdir()
    (watched / "channel_0000.png").write_bytes(b"theirs")
    before = checksum(watched)
    atomic_write_bytes(inside(root, "conv", "channel_0000.png", write=True), b"ours")
    (root / "conv" / "channel_0000.png").unlink()
    (root / "conv").rmdir()
    os.symlink(watched, root / "conv")  # the layer folder replaced by a link to outside
    with pytest.raises(
        PathError, match="conv' is a symbolic link; midnite writes only into real folders under"
    ):
        atomic_write_bytes(inside(root, "conv", "channel_0000.png", write=True), b"ours")
    os.symlink(watched / "channel_0000.png", root / "x.png")  # a file linked to outside
    with pytest.raises(PathError, match="is a symbolic link"):
        inside(root, "x.png", write=True)
    assert checksum(watched) == before
    # reading is allowed through links (the user may link folders in)
    assert inside(root, "conv", "channel_0000.png").read_bytes() == b"theirs"


def test_the_root_itself_may_be_a_link(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    path = inside(tmp_path / "link", "a.png", write=True)
    atomic_write_bytes(path, b"x")
    assert (tmp_path / "real" / "a.png").read_bytes() == b"x"
