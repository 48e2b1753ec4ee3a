"""Hostile image folders (#24 item 2): the one walk and reader skip, name and never hang."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import midnite.images.read as read_module
from midnite.analysis import UnreadableImageWarning, top_examples
from midnite.errors import UsageError
from midnite.images import (
    MAX_FILE_BYTES,
    UnreadableImageError,
    describe_skipped,
    list_images,
    load,
    read_file,
    scan_folder,
)


def png(path: Path, value: int = 200, side: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((side, side, 3), value, np.uint8)).save(path)
    return path


def tiny() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU())


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    """Two good images among a FIFO, a socket, a link to /dev/zero, loops and dangling links."""
    root = tmp_path / "images"
    png(root / "good.png")
    png(root / "sub" / "deep.png", 90)
    os.mkfifo(root / "fifo.png")
    os.symlink(root / "fifo.png", root / "to_fifo.png")
    if os.path.exists("/dev/zero"):
        os.symlink("/dev/zero", root / "zero.png")
    os.symlink(root / "loop_a", root / "loop_b")
    os.symlink(root / "loop_b", root / "loop_a")
    os.symlink(root / "self", root / "self")
    os.symlink(root / "missing.png", root / "dangling.png")
    os.symlink(root, root / "sub" / "back_up")  # a folder link back to the root: not followed
    sock = socket.socket(socket.AF_UNIX)
    with contextlib.suppress(OSError):  # a path too long for a socket on some systems
        sock.bind(str(root / "sock.png"))
    yield root
    sock.close()


def test_the_walk_lists_regular_files_and_names_every_skip(hostile):
    listing = scan_folder(hostile)
    assert listing.files == ["good.png", "sub/deep.png"]
    reasons = dict(listing.skipped)
    assert "a FIFO" in reasons["fifo.png"] and "a FIFO" in reasons["to_fifo.png"]
    if (hostile / "zero.png").is_symlink():
        assert "a character device" in reasons["zero.png"]
    if (hostile / "sock.png").exists():
        assert "a socket" in reasons["sock.png"]
    assert reasons["loop_a"] == reasons["loop_b"] == reasons["self"] == "a symlink loop"
    assert reasons["dangling.png"] == "a dangling symlink"
    assert reasons["sub/back_up/"] == "a symlink to a folder (not followed)"
    assert list_images(hostile) == listing.files


def test_top_examples_skips_and_reports_each_one_once_per_line(hostile):
    with pytest.warns(UnreadableImageWarning) as caught:
        result = top_examples(tiny(), "1", hostile, 2, size=8, progress=False)
    assert len(caught) == 1
    message = str(caught[0].message)
    skipped = dict(result.skipped)
    assert result.seen == 2 and len(skipped) == len(scan_folder(hostile).skipped)
    lines = message.splitlines()
    assert lines[0].startswith(f"skipped {len(skipped)} unreadable file(s)")
    assert [line.split(":")[0].strip() for line in lines[1:]] == [repr(n) for n in sorted(skipped)]


def test_a_pass_never_blocks_on_a_fifo_given_by_name(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(UnreadableImageError, match="not a regular file \\(a FIFO\\)"):
        read_file(tmp_path / "pipe.png")
    with pytest.warns(UnreadableImageWarning), pytest.raises(UsageError, match="no readable"):
        top_examples(tiny(), "1", [tmp_path / "pipe.png"], 1, size=8, progress=False)


def test_a_fifo_swapped_in_after_stat_does_not_hang(tmp_path, monkeypatch):
    os.mkfifo(tmp_path / "swapped.png")
    real_stat = os.stat
    regular = real_stat(png(tmp_path / "real.png"))

    def lying_stat(path, *args, **kwargs):  # the FIFO still looked like a file at stat time
        return regular if str(path).endswith("swapped.png") else real_stat(path, *args, **kwargs)

    monkeypatch.setattr(read_module.os, "stat", lying_stat)
    with pytest.raises(UnreadableImageError, match="changed while opening"):
        read_file(tmp_path / "swapped.png")  # O_NONBLOCK: the open returns at once


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_link_to_dev_zero_is_not_read(tmp_path):
    os.symlink("/dev/zero", tmp_path / "zero.png")
    with pytest.raises(UnreadableImageError, match="a symlink to a character device"):
        read_file(tmp_path / "zero.png")


def test_bytes_are_capped_before_decoding(tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(UnreadableImageError, match="108 bytes, over the limit of 50"):
        read_file(big, limit=50)
    assert len(read_file(big, limit=108)) == 108
    # a file that grows between stat and read is still cut at the limit
    real_stat = os.stat
    monkeypatch.setattr(
        read_module.os,
        "stat",
        lambda p, *a, **k: os.stat_result((stat.S_IFREG | 0o644, *real_stat(p)[1:6], 10, 0, 0, 0)),
    )
    with pytest.raises(UnreadableImageError, match="more than 50 bytes"):
        read_file(big, limit=50)
    assert MAX_FILE_BYTES == 64 * 2**20


def test_unreadable_files_and_folders_are_skipped_and_named(tmp_path, monkeypatch):
    root = tmp_path / "images"
    png(root / "ok.png")
    png(root / "locked.png")
    png(root / "closed" / "inside.png")
    real_open, real_scandir = os.open, os.scandir

    def deny_open(path, *args, **kwargs):  # root ignores chmod 000: deny here instead
        if str(path).endswith("locked.png"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    def deny_scandir(path="."):
        if str(path).endswith("closed"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(read_module.os, "open", deny_open)
    monkeypatch.setattr(read_module.os, "scandir", deny_scandir)
    listing = scan_folder(root)
    assert listing.files == ["locked.png", "ok.png"]
    assert listing.skipped == [("closed/", "folder cannot be read: Permission denied")]
    with pytest.warns(UnreadableImageWarning, match="(?s)'closed/'.*'locked.png': cannot open"):
        result = top_examples(tiny(), "1", root, 2, size=8, progress=False)
    assert result.seen == 1 and [i for i, _ in result.skipped] == ["closed/", "locked.png"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_chmod_000_is_skipped(tmp_path):
    png(tmp_path / "a.png")
    png(tmp_path / "b.png").chmod(0)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub").chmod(0)
    try:
        listing = scan_folder(tmp_path)
        with pytest.raises(UnreadableImageError, match="cannot open"):
            read_file(tmp_path / "b.png")
    finally:
        (tmp_path / "sub").chmod(0o755)
    assert listing.files == ["a.png", "b.png"] and listing.skipped[0][0] == "sub/"


def test_the_output_folder_is_not_walked(tmp_path):
    png(tmp_path / "a.png")
    png(tmp_path / "out" / "thumb.png")
    png(tmp_path / "out" / "more" / "x.png")
    assert list_images(tmp_path) == ["a.png", "out/more/x.png", "out/thumb.png"]
    assert list_images(tmp_path, exclude=[tmp_path / "out"]) == ["a.png"]
    assert list_images(tmp_path, exclude=str(tmp_path / "out")) == ["a.png"]  # one path
    assert list_images(tmp_path, exclude=[tmp_path / "not_there"]) == list_images(tmp_path)
    result = top_examples(
        tiny(), "1", tmp_path, 2, size=8, progress=False, exclude=[tmp_path / "out"]
    )
    assert result.seen == 1
    with pytest.raises(UsageError, match="exclude must list folder paths"):
        list_images(tmp_path, exclude=[""])


def test_an_empty_folder_name_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    png(tmp_path / "would_be_found.png")
    for call in (
        lambda: list_images(""),
        lambda: scan_folder(""),
        lambda: read_file(""),
        lambda: top_examples(tiny(), "1", "", progress=False),
        lambda: load(""),
    ):
        with pytest.raises(UsageError, match="empty"):
            call()


@pytest.mark.parametrize(
    "name",
    ["new\nline.png", "carriage\rreturn.png", "escape\x1b[31mred.png", "tab\there.png", " lead"],
)
def test_skipped_names_stay_on_one_line(tmp_path, name):
    (tmp_path / name).write_bytes(b"not an image")
    png(tmp_path / "ok.png")
    with pytest.warns(UnreadableImageWarning) as caught:
        result = top_examples(tiny(), "1", tmp_path, 1, size=8, progress=False)
    lines = str(caught[0].message).splitlines()
    assert len(lines) == 2 and lines[1] == f"  {name!r}: not a JPEG or PNG file (by content)"
    assert result.skipped == [(name, "not a JPEG or PNG file (by content)")]


def test_describe_skipped_escapes_reasons_and_counts_the_rest():
    text = describe_skipped([("a\nb", "bad\nreason"), ("c", "x"), ("d", "y")], limit=2)
    assert text.splitlines() == ["  'a\\nb': bad\\nreason", "  'c': x", "  (and 1 more)"]
    assert describe_skipped([]) == ""


def test_a_decompression_bomb_is_one_skip_and_no_raw_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    png(tmp_path / "bomb.png", side=20)  # 400 pixels: over the (lowered) limit
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "bomb.jpg")
    png(tmp_path / "ok.png", side=8)  # 64 pixels
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = top_examples(tiny(), "1", tmp_path, 1, size=8, progress=False)
    kinds = [w.category for w in caught]
    assert kinds == [UnreadableImageWarning], kinds  # no DecompressionBombWarning
    reasons = dict(result.skipped)
    assert set(reasons) == {"bomb.jpg", "bomb.png"} and result.seen == 1
    assert all("20x20 pixels, over Pillow's limit of 100" in r for r in reasons.values())


def test_an_image_holding_nan_is_skipped_never_an_example_at_minus_inf(tmp_path):
    good = torch.rand(3, 8, 8)
    nan = torch.rand(3, 8, 8)
    nan[0, 2, 2] = float("nan")
    with pytest.warns(UnreadableImageWarning, match="\n  1: holds NaN or infinite values"):
        result = top_examples(tiny(), "1", [good, nan], 2, size=8, progress=False)
    assert result.seen == 1 and result.skipped == [(1, "holds NaN or infinite values")]
    assert bool(torch.isfinite(result["1"].values).all())
    assert result["1"].values.shape == (2, 1)
    with pytest.raises(UnreadableImageError, match="holds NaN"):
        load(np.full((4, 4, 3), np.inf, np.float32))


def test_a_folder_met_twice_is_walked_once(tmp_path, monkeypatch):
    png(tmp_path / "a" / "x.png")
    png(tmp_path / "b" / "y.png")
    real_stat = os.stat
    a_stat = real_stat(tmp_path / "a")

    def mounted(path, *args, **kwargs):  # b looks like a bind mount of a (same device, inode)
        return a_stat if str(path) == str(tmp_path / "b") else real_stat(path, *args, **kwargs)

    monkeypatch.setattr(read_module.os, "stat", mounted)
    listing = scan_folder(tmp_path)
    assert len(listing.files) == 1 and listing.files[0] in ("a/x.png", "b/y.png")
    assert listing.skipped[0][1] == "a folder met before (a mount loop)"
