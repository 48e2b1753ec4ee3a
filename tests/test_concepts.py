"""Concepts: the planted superposition is found (two seeds), bad input fails in one line."""

from __future__ import annotations

import warnings

import pytest
import torch

from midnite import Concepts, concepts
from midnite.analysis import concepts as C
from midnite.analysis import dictionary as dic
from midnite.analysis import top_examples
from midnite.errors import UsageError
from midnite.evaluation.known_answer import superposition_images, superposition_net
from midnite.evaluation.superposition import (
    concept_pattern,
    concept_recovery,
    planted_directions,
)
from midnite.store.concepts import load_concepts, save_concepts

K, CH = 12, 6


@pytest.fixture(scope="module", params=[0, 1])
def fitted(request):
    seed = request.param
    net = superposition_net()
    x, labels = superposition_images(300, seed=seed)
    c = C.fit(net, "mix", x, K, seed=seed, size=32)
    return net, x, labels, c


def _label(labels, image, pos):
    return int(labels[image, pos[0], pos[1]])


def test_planted_concepts_are_found(fitted):
    _net, _x, _labels, c = fitted
    assert c.method == "nmf" and c.directions.shape == (K, CH)
    assert torch.allclose(c.directions.norm(dim=1), torch.ones(K), atol=1e-5)
    cos, _ = dic.match(planted_directions(), c.directions)
    assert (cos >= 0.9).float().mean() >= 0.9
    assert c.quality["r2"] > 0.99 and c.quality["dead"] == 0.0
    assert c.quality["images"] == 300


def test_concepts_top_examples_are_pure_channels_mixed(fitted):
    net, x, labels, c = fitted
    _, match = dic.match(planted_directions(), c.directions)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the receptive field probe must find the cells
        te = c.top_examples(x, 9)
    purity = []
    for k in range(K):
        ex = te.examples("mix", int(match[k]))
        purity.append(sum(_label(labels, e.image, e.position) == k for e in ex) / len(ex))
    assert min(purity) >= 0.9
    crop = te.crop("mix", int(match[0]), 0, image=x[te.examples("mix", int(match[0]))[0].image])
    assert crop.shape == (3, 8, 8)
    units = top_examples(net, "mix", x, 9, size=32, progress=False)
    mixed = []
    for u in range(CH):
        labs = [_label(labels, e.image, e.position) for e in units.examples("mix", u)]
        mixed.append(max(labs.count(v) for v in set(labs)) / len(labs))
    assert max(mixed) < 0.9


def test_codes_maps_units_importance(fitted):
    _net, x, labels, c = fitted
    _, match = dic.match(planted_directions(), c.directions)
    maps = c.maps(x[:20])
    assert maps.shape == (20, K, 4, 4)
    codes = c.codes(x[:20])
    assert torch.equal(codes, maps.flatten(2).amax(2))
    # a concept's map is high exactly where its pattern lies
    for k in range(K):
        on = maps[:, int(match[k])] > 0.1 * float(maps[:, int(match[k])].max())
        assert torch.equal(on, labels[:20] == k)
    i = int(match[3])
    chans = {ch for ch, _ in c.units(i, 2)}
    assert chans == set(torch.nonzero(planted_directions()[3]).flatten().tolist())
    tiles = torch.stack([concept_pattern(k).repeat(1, 4, 4) for k in range(K)])
    for k in (0, 5):
        imp = c.importance(k, tiles[k : k + 1])
        assert imp.shape == (K,) and int(imp.argmax()) == int(match[k])
    heat = c.heatmaps(x[0])
    assert heat.shape == (K, 32, 32)


def test_signed_layer_sae_and_nmf_refused():
    net = superposition_net(signed=True)
    x, _ = superposition_images(300, seed=0)
    with pytest.raises(UsageError, match=r"negative activations.*sae"):
        C.fit(net, "mix", x, K, "nmf", size=32)
    c = C.fit(net, "mix", x, K, seed=0, size=32, steps=300)
    assert c.method == "sae"
    cos, _ = dic.match(planted_directions(signed=True), c.directions)
    assert (cos >= 0.9).float().mean() >= 0.9


def test_stability_and_state_roundtrip(fitted, tmp_path):
    net, x, _labels, c = fitted
    other = C.fit(net, "mix", x, K, seed=7, size=32)
    mean, per = C.stability(c, other)
    assert mean > 0.99 and per.shape == (K,) and c.stability(other) == pytest.approx(mean)
    path = save_concepts(tmp_path / "d.pt", c)
    back = load_concepts(path, net, "mix")
    assert torch.allclose(back.directions, c.directions) and back.quality == c.quality
    assert torch.allclose(back.codes(x[:5]), c.codes(x[:5]), atol=1e-5)
    assert [p.name for p in tmp_path.iterdir()] == ["d.pt"]  # no temporary file left


def test_bad_input_one_line_nothing_written(tmp_path):
    net = superposition_net()
    x, _ = superposition_images(4, seed=0)
    cases = [
        (lambda: C.fit(net, "mix", x, 200, size=32), "n=200 concepts need"),
        (lambda: C.fit(net, "nope", x, 3, size=32), "nope"),
        (lambda: C.fit(net, "mix", x, 3, "pca", size=32), "method must be one of"),
        (lambda: C.from_directions(net, "mix", torch.rand(5, 7), size=32), "7 channels"),
        (lambda: C.from_directions(net, "mix", torch.zeros(5, 6), size=32), "all zeros"),
    ]
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"not an image")
    cases.append((lambda: C.fit(net, "mix", tmp_path / "empty", 3, size=32), "holds no files"))
    cases.append((lambda: C.fit(net, "mix", tmp_path / "bad", 3, size=32), "no readable image"))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for call, words in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises((UsageError, Exception), match=words) as err:
                call()
        assert "\n" not in str(err.value), str(err.value)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_saved_dictionary_of_another_model_or_layer_refused(tmp_path):
    net = superposition_net()
    x, _ = superposition_images(100, seed=0)
    c = concepts(net, "mix", x, K, size=32)
    path = c.save(tmp_path / "d.pt")
    assert isinstance(Concepts.load(path, net), Concepts)
    other = superposition_net()
    with torch.no_grad():
        other.head.weight.mul_(2)
    with pytest.raises(UsageError, match="another model"):
        Concepts.load(path, other)
    with pytest.raises(UsageError, match="not 'detect'"):
        Concepts.load(path, net, "detect")
    given = Concepts.from_directions(net, "mix", planted_directions(), method="nmf", size=32)
    assert torch.allclose(given.directions, planted_directions())


def test_known_answer_helpers():
    x, labels = superposition_images(10, seed=3)
    assert x.shape == (10, 3, 32, 32) and labels.shape == (10, 4, 4)
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    assert torch.equal(superposition_images(10, seed=3)[0], x)
    tile = concept_pattern(4).repeat(1, 4, 4)
    assert float(concept_recovery(tile, 4)) > 0.99 and float(concept_recovery(tile, 5)) < 0.01
    d = planted_directions()
    off = (d @ d.T - torch.eye(K)).abs()
    assert float(off.max()) > 0.1  # not orthogonal: superposed
    with pytest.raises(UsageError, match="channels"):
        superposition_net(4, 6)


def test_reservoir_is_the_same_however_batched_or_sharded():
    net = superposition_net()
    x, _ = superposition_images(40, seed=0)
    kw = dict(size=32, rows_per_image=3, max_rows=50, seed=5)
    whole = C.collect(net, "mix", x, batch=32, **kw)
    assert whole.rows.shape == (50, CH) and whole.images == 40
    assert bool((whole.keys[1:] >= whole.keys[:-1]).all())  # kept by key
    small = C.collect(net, "mix", x, batch=7, **kw)
    parts = [C.collect(net, "mix", x, shard=(i, 3), **kw) for i in range(3)]
    merged = parts[2].merge(parts[0]).merge(parts[1])
    for other in (small, merged):
        assert torch.equal(other.keys, whole.keys)
        assert torch.allclose(other.rows, whole.rows, atol=1e-6)
        assert other.images == 40 and other.low == whole.low
    assert not torch.equal(C.collect(net, "mix", x, **{**kw, "seed": 6}).keys, whole.keys)
    with pytest.raises(UsageError, match="do not merge"):
        whole.merge(C.collect(net, "mix", x, **{**kw, "max_rows": 40}))
    # the dictionary is learned from a given reservoir: fit is collect + learn
    fitted = C.fit(net, "mix", x, 4, batch=32, iters=20, **kw)
    assert torch.equal(C.learn(net, merged, 4, iters=20).directions, fitted.directions)
    with pytest.raises(UsageError, match="n=60 concepts need at least 60 activation rows"):
        C.learn(net, merged, 60)


def test_reservoir_of_a_folder_keys_images_by_their_path(tmp_path):
    from midnite.images import UnreadableImageWarning, png_bytes

    net = superposition_net()
    x, _ = superposition_images(12, seed=1)
    data = {f"d{i % 2}/img{i:02d}.png": png_bytes(img) for i, img in enumerate(x)}
    for name, blob in data.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(blob)
    kw = dict(size=32, rows_per_image=2, max_rows=10, seed=0)
    folder = C.collect(net, "mix", tmp_path, **kw)
    names = sorted(data)
    chunks = [{n: data[n] for n in names[:5]}, {n: data[n] for n in names[5:]}]
    merged = C.collect(net, "mix", chunks[1], shard=(0, 1), **kw).merge(
        C.collect(net, "mix", chunks[0], shard=(0, 1), **kw)
    )
    assert torch.equal(merged.keys, folder.keys) and merged.images == 12
    assert torch.allclose(merged.rows, folder.rows, atol=1e-6)
    with pytest.warns(UnreadableImageWarning, match="bad.png"):  # skipped, said, no error
        empty = C.collect(net, "mix", {"bad.png": b"no image"}, shard=(0, 1), **kw)
    assert empty.images == 0 and empty.rows is None
    assert torch.equal(folder.merge(empty).keys, folder.keys)
