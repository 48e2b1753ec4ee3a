"""Keys, digests and the one batch seed (``midnite.store.keys``)."""

from __future__ import annotations

import hashlib

import pytest
import torch
from torch import nn

from midnite.errors import UsageError
from midnite.store import keys
from midnite.store.paths import component


def _sha_seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def test_the_batch_seed_is_the_catalogues_derivation():
    seed = keys.batch_seed(7, "_blocks.8", "channel", [0, 1, 2])
    assert seed == _sha_seed("midnite-catalogue:7:_blocks.8:channel:0,1,2")
    assert 0 <= seed < 2**63
    assert seed == keys.batch_seed(7, "_blocks.8", "channel", (0, 1, 2))  # any iterable
    others = {
        keys.batch_seed(8, "_blocks.8", "channel", [0, 1, 2]),
        keys.batch_seed(7, "_blocks.9", "channel", [0, 1, 2]),
        keys.batch_seed(7, "_blocks.8", "negative", [0, 1, 2]),
        keys.batch_seed(7, "_blocks.8", "channel", [0, 1]),
    }
    assert seed not in others and len(others) == 4


def test_the_render_commands_older_seed_is_kept_for_its_callers():
    assert keys.batch_seed(0, [0, 1]) == _sha_seed("midnite:0:0,1")
    assert keys.batch_seed(0, [0, 1]) != keys.batch_seed(0, "", "class", [0, 1])


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((1.5, [0]), "seed must be an int, got float: 1.5"),
        ((0, "01"), "units must be an iterable of ints, got str: '01'"),
        ((0, [0, 1.0]), "each unit must be an int, got float: 1.0"),
        ((0, 3, "channel", [0]), "batch_seed's layer and view must be strings, got int and str"),
        ((0, "a", "channel"), r"batch_seed takes \(seed, layer, view, units\) or \(seed, units\), "
         "got 3 arguments"),
    ],
)  # fmt: skip
def test_bad_seed_arguments_are_named(args, words):
    with pytest.raises(UsageError, match=words):
        keys.batch_seed(*args)


def test_unit_stem_and_layer_folder_spell_layers_as_one_name():
    assert keys.unit_stem("features.3", "channel", 7) == "features.3_channel_0007"
    assert keys.unit_stem("a/b c", "neuron", 12345) == "a-b-c_neuron_12345"
    assert keys.unit_stem("", "class", 1) == "output_class_0001"
    assert keys.layer_folder("blocks.1/x") == "blocks.1-x" and keys.layer_folder("") == "output"
    assert keys.layer_folder("..") == "--" and keys.layer_folder("/.") == "-"
    for hostile in ("/etc", "../x", "..", ".", "a\\b", "a\0b", "é/é"):
        assert component(keys.layer_folder(hostile)) == keys.layer_folder(hostile)


def test_plan_batches_depends_on_the_indices_only():
    assert keys.plan_batches([9, 0, 1, 3, 2, 5, 1], 4) == [[0, 1, 2, 3], [5], [9]]
    assert keys.plan_batches([], 2) == []
    for bad in (0, True, 2.0):
        with pytest.raises(UsageError, match="batch must be an int >= 1, got"):
            keys.plan_batches([0], bad)  # type: ignore[arg-type]


def test_weights_digest_changes_with_any_weight():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2))
    digest = keys.weights_digest(net)
    assert len(digest) == 16 and digest == keys.weights_digest(net)
    with torch.no_grad():
        net[0].weight[0, 0, 0, 0] += 1e-6
    assert keys.weights_digest(net) != digest


def test_sha256_file(tmp_path):
    (tmp_path / "a").write_bytes(b"abc")
    assert keys.sha256_file(tmp_path / "a") == hashlib.sha256(b"abc").hexdigest()
