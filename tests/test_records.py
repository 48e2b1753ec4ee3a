"""Typed unit records (``midnite.store.schema``) and reading a folder back (``store.records``)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from midnite import errors
from midnite import records as rec
from midnite.store import records as store_records
from midnite.store.schema import (
    Activation,
    AlphaFile,
    BatchPosition,
    ImageFile,
    Timing,
    UnitRecord,
    describe,
)

PNG = b"\x89PNG not really"
SHA = hashlib.sha256(PNG).hexdigest()


def v2(**change) -> dict:
    """A valid ``midnite.record/2`` object as midnite 2 wrote it (seconds at the top)."""
    record = {
        "format": "midnite.record/2", "model": "m", "layer": "conv", "unit": 3,
        "objective": "channel", "key": {"batch": 2, "weights": "ab", "steps": 4},
        "run": {"model": "m", "steps": 4, "seed": 0}, "metrics": {"hf": 0.5},
        "activation": {"start": 0.25, "final": None},
        "image": {"file": "conv_channel_0003.png", "sha256": SHA, "height": 8, "width": 8},
        "batch": {"units": [2, 3], "position": 1, "seed": 12},
        "history": [0.25, None, 1.0], "seconds": 1.5, "created": "2026-01-01T00:00:00+00:00",
        "command": ["midnite", "render"],
    }  # fmt: skip
    record.update(change)
    return record


def test_the_old_import_path_is_the_same_module():
    assert rec is store_records
    assert rec.UnitRecord is UnitRecord and rec.FORMAT == "midnite.record/3"
    assert rec.FORMATS == ("midnite.record/1", "midnite.record/2", "midnite.record/3")


def test_a_version_2_record_is_converted_and_written_as_version_3():
    record = UnitRecord.from_json(v2())
    assert record.unit == 3 and record.image == ImageFile(
        file="conv_channel_0003.png", sha256=SHA, height=8, width=8
    )
    assert record.activation == Activation(start=0.25, final=None)
    assert record.batch == BatchPosition(units=(2, 3), position=1, seed=12)
    assert record.history == (0.25, None, 1.0) and record.command == ("midnite", "render")
    assert record.timing == Timing(seconds=1.5, created="2026-01-01T00:00:00+00:00")
    out = record.to_json()
    assert out["format"] == "midnite.record/3"
    assert "seconds" not in out and out["timing"] == {
        "seconds": 1.5,
        "created": "2026-01-01T00:00:00+00:00",
    }
    assert out["batch"] == {"units": [2, 3], "position": 1, "seed": 12}
    again = UnitRecord.from_json(json.loads(json.dumps(out)))
    assert again == record and again.timing == record.timing
    assert again.to_json() == out


def test_a_version_1_record_takes_its_run_from_key_and_settings():
    old = v2(format="midnite.record/1", key={"steps": 4, "seed": 1, "unit": 3},
             settings={"recipe": "plain"})  # fmt: skip
    del old["run"]
    record = UnitRecord.from_json(old)
    assert record.run == {"steps": 4, "seed": 1, "recipe": "plain"}
    assert rec.run_of(record) == rec.run_of(old) == {"steps": 4, "seed": 1, "recipe": "plain"}
    assert UnitRecord.from_json(record.to_json()) == record  # /1 read, written as /3


def test_records_of_the_same_work_are_equal_whatever_their_timing():
    a = UnitRecord.from_json(v2(seconds=1.0, created="2026-01-01T00:00:00+00:00"))
    b = UnitRecord.from_json(v2(seconds=9.5, created="2027-05-05T12:00:00+00:00"))
    assert a.timing != b.timing
    assert a == b
    assert UnitRecord.from_json(v2(unit=4)) != a  # identity fields do count
    assert UnitRecord.from_json(v2(key={"batch": 2, "weights": "cd"})) != a
    assert [f.name for f in dataclasses.fields(UnitRecord) if not f.compare] == ["timing"]


def test_fields_this_midnite_does_not_know_are_kept():
    obj = v2(view="channel", catalogue=True, future={"x": [1]})
    obj["image"] = {**obj["image"], "dpi": 72}
    record = UnitRecord.from_json(obj)
    assert record.view == "channel" and record.catalogue is True
    assert record.extra == {"future": {"x": [1]}} and record.image.extra == {"dpi": 72}
    out = record.to_json()
    assert out["future"] == {"x": [1]} and out["image"]["dpi"] == 72


def test_a_record_is_built_in_python_and_read_back_the_same(tmp_path):
    record = UnitRecord(
        model="m", layer="", unit=0, objective="class", key={"batch": 1, "weights": "00"},
        run={"model": "m"}, activation=Activation(start=0.0, final=1.0), metrics={},
        image=ImageFile(file="a.png", sha256=SHA),
        alpha=AlphaFile(file="a_alpha.png", sha256=SHA, scale=2.0),
        timing=Timing(seconds=0.5),
    )  # fmt: skip
    path = rec.write_record(tmp_path / "a.json", record)
    assert json.loads(path.read_text())["alpha"] == {
        "file": "a_alpha.png", "sha256": SHA, "scale": 2.0,
    }  # fmt: skip
    assert rec.load_record(path) == record and rec.read_record(path) == record.to_json()
    assert record.get("alpha")["scale"] == 2.0 and record.get("nothing", 7) == 7
    with pytest.raises(TypeError, match="record must be a UnitRecord, got dict"):
        rec.write_record(tmp_path / "b.json", record.to_json())  # type: ignore[arg-type]
    wrong = dataclasses.replace(record, image=ImageFile(file="../a.png", sha256=SHA))
    with pytest.raises(rec.RecordError, match=r"'image\.file' must be a file name"):
        rec.write_record(tmp_path / "c.json", wrong)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_a_record_nested_too_deep_in_memory_is_a_record_error():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(rec.RecordError, match="nests too deep"):
        UnitRecord.from_json(v2(metrics={"x": deep}))


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (None, "null"), (True, "true"), (-1, "number -1"), (0.5, "number 0.5"),
        ("x" * 50, "string '" + "x" * 37 + "...'"), ([1, 2], "an array of 2"),
        ({"a": 1}, "an object"), (b"x", "bytes"),
    ],
)  # fmt: skip
def test_describe_names_a_json_value(value, words):
    assert describe(value) == words


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"format": "midnite.record/4"}, "'format' must be one of midnite.record/1, "
         "midnite.record/2, midnite.record/3, got string 'midnite.record/4'"),
        ({"model": 3}, "'model' must be a string, got number 3"),
        ({"unit": True}, "'unit' must be an integer >= 0, got true"),
        ({"key": []}, "'key' must be an object, got an array of 0"),
        ({"key": {"weights": "ab"}}, "'key.batch' is missing; it must be an integer >= 0"),
        ({"key": {"batch": 2, "weights": 5}}, "'key.weights' must be a string, got number 5"),
        ({"activation": {"start": float("inf"), "final": 0.0}},
         "'activation.start' must be a finite number or null, got number inf"),
        ({"image": {"file": "a/b.png", "sha256": SHA}},
         "'image.file' must be a file name in the record's folder, got string 'a/b.png'"),
        ({"image": {"file": "..", "sha256": SHA}}, "'image.file' must be a file name"),
        ({"image": {"sha256": SHA}}, "'image.file' is missing; it must be a file name"),
        ({"image": {"file": "a.png", "sha256": SHA, "height": -1}},
         "'image.height' must be an integer >= 0, got number -1"),
        ({"alpha": {"file": "a.png", "sha256": SHA}}, "'alpha.scale' is missing; it must be a "
         "finite number"),
        ({"alpha": None}, "'alpha' must be an object, got null"),
        ({"batch": {"units": [1, "2"], "position": 0, "seed": 1}},
         "'batch.units' must be an array of integers, got an array of 2"),
        ({"seed": None}, "'seed' must be an integer, got null"),
        ({"command": "midnite"}, "'command' must be an array of strings, got string 'midnite'"),
        ({"seconds": "1s"}, "'seconds' must be a finite number, got string '1s'"),
        ({"timing": {"seconds": -1, "created": 5}}, "'timing.created' must be a string"),
        ({"catalogue": 1}, "'catalogue' must be true or false, got number 1"),
        ({"activation": {"start": 0, "final": "1"}}, "'activation.final' must be a finite "
         "number or null, got string '1'"),
    ],
)  # fmt: skip
def test_a_bad_record_is_named_by_field_expected_and_given(change, words):
    with pytest.raises(rec.RecordError, match=re.escape(words)):
        UnitRecord.from_json(v2(**change))
    with pytest.raises(ValueError, match=re.escape(words)):  # check_record: the same schema
        rec.check_record(v2(**change))


def test_a_huge_integer_is_a_finite_number():
    record = UnitRecord.from_json(v2(activation={"start": 10**400, "final": -(10**400)}))
    assert record.activation.start == 10**400


def test_a_record_must_be_an_object_with_a_format():
    with pytest.raises(rec.RecordError, match="a record must be a JSON object, got an array"):
        UnitRecord.from_json([1])
    with pytest.raises(rec.RecordError, match="the record has no 'format'"):
        UnitRecord.from_json({k: v for k, v in v2().items() if k != "format"})
    assert rec.check_record(v2()) == v2()


def test_record_errors_are_midnite_errors_and_value_errors():
    assert issubclass(rec.RecordError, errors.MidniteError)
    assert issubclass(rec.RecordError, ValueError)
    assert issubclass(rec.RecordError, rec.DamagedError)
    assert rec.RecordError.exit_code == errors.EXIT_FAILED
    assert issubclass(rec.FolderBusy, errors.BusyError) and rec.FolderBusy.exit_code == 3


def unit_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "conv_channel_0003.png").write_bytes(PNG)
    rec.write_json(folder / "conv_channel_0003.json", v2())
    return folder


def test_scan_gives_json_objects_and_typed_records(tmp_path):
    folder = unit_folder(tmp_path)
    found = rec.scan(folder)
    assert found.damaged == [] and found.valid() == {"conv_channel_0003": v2()}
    assert found.records() == {"conv_channel_0003": UnitRecord.from_json(v2())}
    assert rec.read_records(folder) == found.units
    key = v2()["key"]
    assert rec.is_complete(folder, "conv_channel_0003", key)
    assert not rec.is_complete(folder, "conv_channel_0003", {**key, "steps": 5})
    (folder / "conv_channel_0003.png").write_bytes(PNG + b"!")
    assert not rec.is_complete(folder, "conv_channel_0003", key)
    (bad,) = rec.scan(folder).damaged
    assert bad.reason == "its image 'conv_channel_0003.png' does not match the record's " \
        "SHA-256 (truncated or changed)"  # fmt: skip


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[" * 200_000 + "]" * 200_000, "its record nests 200000 levels deep (at most 64"),
        ('{"a":' * 200_000 + "1" + "}" * 200_000, "its record nests 200000 levels deep"),
        ('{"format": "midnite.record/2", "unit": NaN}', "its record is not valid JSON (NaN is"),
        ('{"format": "midnite.record/2"', "its record is not valid JSON"),
        ('{"unit": ' + "9" * 5000 + "}", "its record is not valid JSON (Exceeds the limit"),
    ],
)
def test_a_record_too_deep_or_not_strict_json_is_a_damaged_unit(tmp_path, text, reason):
    folder = unit_folder(tmp_path)
    (folder / "conv_channel_0004.json").write_text(text)
    found = rec.scan(folder)  # never raises
    assert [p.name for p, _ in found.units] == ["conv_channel_0003.json"]
    (bad,) = found.damaged
    assert (bad.stem, bad.layer, bad.objective, bad.unit) == ("conv_channel_0004", "conv",
                                                              "channel", 4)  # fmt: skip
    assert bad.reason.startswith(reason)
    assert rec.read_record(folder / "conv_channel_0004.json") is None
    assert not rec.is_complete(folder, "conv_channel_0004", {})


def test_a_record_over_the_size_limit_is_a_damaged_unit(tmp_path, monkeypatch):
    folder = unit_folder(tmp_path)
    monkeypatch.setattr(store_records, "read_json", _small_read_json)
    (bad,) = rec.scan(folder).damaged
    assert bad.reason.startswith("its record is over 100 bytes")


def _small_read_json(path):
    from midnite.store.files import read_json

    return read_json(path, max_bytes=100)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_record_that_is_a_fifo_is_damaged_and_does_not_hang_the_scan(tmp_path):
    folder = unit_folder(tmp_path)
    os.mkfifo(folder / "conv_channel_0005.json")
    (bad,) = rec.scan(folder).damaged
    assert str(bad) == "conv_channel_0005: its record is not a regular file (a FIFO, device or " \
        "folder is not read)"  # fmt: skip


def test_other_json_files_are_passed_over(tmp_path):
    folder = unit_folder(tmp_path)
    (folder / "notes.json").write_text("[" * 100 + "]" * 100)  # not ours: no PNG, no unit name
    (folder / "plan.json").write_text('{"format": "someone/1"}')
    assert [p.name for p, _ in rec.scan(folder).units] == ["conv_channel_0003.json"]
    assert rec.scan(folder).damaged == []


def test_run_conflicts_name_the_fields_that_differ():
    ours = {"model": "m", "steps": 4, "lr": 0.05, "recipe": "a", "seed": 0}
    assert rec.run_conflicts(ours, {**ours, "seed": 1, "model": "n"}) == ["model", "seed"]
    assert rec.run_conflicts(ours, {**ours, "steps": 9, "recipe": "b"}) == []  # other recipe
    assert rec.run_conflicts(ours, {"size": 8}) == []
