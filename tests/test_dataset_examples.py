"""Dataset examples: a streaming top K per unit that equals brute force, on generated images."""

from __future__ import annotations

import pickle
import shutil
import warnings
from collections import Counter, OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import midnite.dataset_examples as dx
from midnite.dataset_examples import (
    TopExamples,
    UnreadableImageError,
    UnreadableImageWarning,
    list_images,
    load_image,
    merge,
    receptive_fields,
    top_examples,
)
from midnite.engine.hooks import ActivationCapture, LayerNotFoundError

from conftest import assert_same_state, model_state

SIZE = 32
LAYERS = ["conv", "relu", "down", "pool", "flat"]

# (colour channel, strength 0..255, top, left) of a 5x5 square on black, one per image
PLANTED = [
    (0, 200, 3, 4),
    (1, 120, 20, 9),
    (2, 250, 10, 22),
    (0, 90, 25, 25),
    (1, 230, 0, 0),
    (2, 60, 14, 2),
    (0, 160, 8, 17),
    (1, 180, 27, 14),
]


def colour_net() -> nn.Sequential:
    """Channel c of ``conv``/``relu`` answers colour c (minus a quarter of the others)."""
    net = nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(3, 3, 3, padding=1, bias=False),
            relu=nn.ReLU(),
            down=nn.Conv2d(3, 3, 3, stride=2, padding=1, bias=False),
            pool=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            head=nn.Linear(3, 2),
        )
    )
    with torch.no_grad():
        mix = torch.full((3, 3), -0.25)
        mix.fill_diagonal_(1.0)
        net.conv.weight.copy_(mix[:, :, None, None].expand(3, 3, 3, 3) / 9)
        net.down.weight.zero_()
        for c in range(3):
            net.down.weight[c, c] = 1 / 9
        net.head.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]))
        net.head.bias.zero_()
    return net


def square(colour: int, strength: int, top: int, left: int, side: int = 5) -> Image.Image:
    arr = np.zeros((SIZE, SIZE, 3), np.uint8)
    arr[top : top + side, left : left + side, colour] = strength
    return Image.fromarray(arr)


def noise(seed: int, h: int, w: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """Planted squares in nested folders, noise (JPEG, other sizes) and a duplicate (a tie)."""
    root = tmp_path / "images"
    for i, spec in enumerate(PLANTED):
        folder = root / ("a" if i % 2 else "b/c")
        folder.mkdir(parents=True, exist_ok=True)
        square(*spec).save(folder / f"sq{i}.png")
    noise(1, 40, 48).save(root / "noise1.jpg", quality=90)
    noise(2, 64, 32).save(root / "noise2.png")
    noise(3, SIZE, SIZE).convert("L").save(root / "gray.png")
    shutil.copy(root / "b/c/sq0.png", root / "z_copy_of_sq0.png")  # same scores as sq0: a tie
    (root / ".hidden").write_text("not an image, and not looked at")
    return root


def brute_force(model, layers, images: dict[str, torch.Tensor], k: int, batch: int = 1) -> dict:
    """Run every image, keep every score; per unit sort by (score descending, id ascending).

    Images go through the model in the same batches as in ``top_examples``, so that float
    rounding (which decides between positions of equal value in exact arithmetic) is the same.
    """
    scores: dict[str, dict[str, tuple]] = {layer: {} for layer in layers}
    ids = list(images)
    with torch.no_grad(), ActivationCapture(model, layers) as cap:
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            acts = cap(torch.stack([images[i] for i in chunk]))
            for layer in layers:
                for j, ident in enumerate(chunk):
                    a = acts[layer][j]
                    if a.dim() == 3:
                        best, where = a.flatten(1).max(1)
                        pos = [(int(w) // a.shape[2], int(w) % a.shape[2]) for w in where]
                    else:
                        best, pos = a, [None] * a.shape[0]
                    scores[layer][ident] = (best.tolist(), pos)
    out = {}
    for layer in layers:
        per_image = scores[layer]
        units = len(next(iter(per_image.values()))[0])
        out[layer] = [
            [
                (per_image[i][0][c], i, per_image[i][1][c])
                for i in sorted(per_image, key=lambda i, c=c: (-per_image[i][0][c], i))[:k]
            ]
            for c in range(units)
        ]
    return out


def readable(root: Path) -> dict[str, torch.Tensor]:
    return {name: load_image(root / name, SIZE) for name in list_images(root)}


def assert_same(a: TopExamples, b: TopExamples) -> None:
    assert a.images == b.images
    assert list(a.layers) == list(b.layers)
    for layer, ra in a.layers.items():
        rb = b.layers[layer]
        assert torch.equal(ra.values, rb.values), layer
        assert torch.equal(ra.image_index, rb.image_index), layer
        assert (ra.positions is None) == (rb.positions is None)
        if ra.positions is not None:
            assert torch.equal(ra.positions, rb.positions), layer
        assert ra.field == rb.field
    assert (a.seen, a.decoded, a.skipped) == (b.seen, b.decoded, b.skipped)


# ------------------------------------------------------------------------------ correctness
def test_equals_brute_force(planted):
    model = colour_net()
    k = 4
    result = top_examples(model, LAYERS, planted, k, size=SIZE, batch=3, progress=False)
    expected = brute_force(model, LAYERS, readable(planted), k, batch=3)
    assert result.seen == result.decoded == len(list_images(planted)) == 12
    assert result.skipped == []
    for layer in LAYERS:
        assert result[layer].values.shape == (3, k)
        for c in range(3):
            got = result.examples(layer, c)
            want = expected[layer][c]
            assert [e.image for e in got] == [w[1] for w in want], (layer, c)
            assert [e.position for e in got] == [w[2] for w in want], (layer, c)
            torch.testing.assert_close(
                torch.tensor([e.value for e in got]), torch.tensor([w[0] for w in want])
            )


def test_planted_squares_are_found_where_they_are(planted):
    # batch=1: each image alone, so the duplicate's scores equal the original's to the bit
    result = top_examples(
        colour_net(), ["relu", "down"], planted, 3, size=SIZE, batch=1, progress=False
    )
    for c in range(3):
        colour = [(i, s, t, left) for i, (col, s, t, left) in enumerate(PLANTED) if col == c]
        brightest = max(colour, key=lambda p: p[1])
        i, strength, top, left = brightest
        best = result.examples("relu", c)[0]
        assert best.image.endswith(f"sq{i}.png")
        # a 3x3 box filter is largest where it lies inside the square; the first such place
        assert best.position == (top + 1, left + 1)
        assert best.value == pytest.approx(strength / 255, rel=1e-5)
        assert best.box == (top, left, top + 3, left + 3)
        crop = result.crop("relu", c)
        assert crop.shape == (3, 3, 3)
        assert torch.allclose(crop[c], torch.full((3, 3), strength / 255))
        # the images with other colours score 0 and follow in id order
        rest = [e for e in result.examples("relu", c) if e.value == 0]
        assert [e.image for e in rest] == sorted(e.image for e in rest)
    # the duplicate of sq0 ties with it and comes after it (ids in order)
    red = [e.image for e in result.examples("relu", 0)]
    assert red[:2] == ["b/c/sq0.png", "z_copy_of_sq0.png"]


def test_receptive_fields_match_the_convolutions():
    fields = receptive_fields(colour_net(), LAYERS, SIZE)
    assert fields["flat"] is None
    for y in range(SIZE):
        for x in (0, 5, SIZE - 1):
            box = (max(0, y - 1), max(0, x - 1), min(SIZE, y + 2), min(SIZE, x + 2))
            assert fields["conv"].box(y, x) == box
            assert fields["relu"].box(y, x) == box
    for y in range(SIZE // 2):
        for x in (0, 7, SIZE // 2 - 1):
            box = (
                max(0, 2 * y - 2),
                max(0, 2 * x - 2),
                min(SIZE, 2 * y + 3),
                min(SIZE, 2 * x + 3),
            )
            assert fields["down"].box(y, x) == box
    assert fields["down"].stride == (2.0, 2.0)
    assert fields["pool"].box(0, 0) == (0, 0, SIZE, SIZE)  # global pooling sees everything
    with pytest.raises(IndexError, match="row"):
        fields["down"].box(SIZE // 2, 0)


def test_a_field_larger_than_the_image_is_the_whole_image():
    model = nn.Sequential(nn.Conv2d(3, 2, 31, padding=15), nn.Conv2d(2, 2, 3, padding=1))
    field = receptive_fields(model, "1", 16)["1"]
    assert {field.box(y, x) for y in range(16) for x in range(16)} == {(0, 0, 16, 16)}


# ------------------------------------------------------------------------------ shards
def test_merged_shards_equal_the_single_pass(planted):
    model = colour_net()
    kw = dict(size=SIZE, batch=2, progress=False)
    full = top_examples(model, LAYERS, planted, 5, **kw)
    parts = [top_examples(model, LAYERS, planted, 5, shard=(i, 3), **kw) for i in range(3)]
    assert sum(p.seen for p in parts) == full.seen
    assert_same(merge(*parts), full)
    assert_same(merge(parts[2], parts[0], parts[1]), full)
    assert_same(merge(*[pickle.loads(pickle.dumps(p)) for p in parts]), full)  # to and from workers
    assert_same(parts[1].merge(parts[2]).merge(parts[0]), full)


def test_merged_shards_of_tensors_equal_the_single_pass(planted):
    model = colour_net()
    tensors = list(readable(planted).values())
    full = top_examples(model, LAYERS, tensors, 3, size=SIZE, progress=False)
    parts = [
        top_examples(model, LAYERS, tensors, 3, size=SIZE, shard=(i, 2), progress=False)
        for i in (1, 0)
    ]
    assert_same(merge(*parts), full)


def test_an_empty_shard_is_an_empty_result_that_merges(planted):
    model = colour_net()
    tensors = list(readable(planted).values())[:2]
    empty = top_examples(model, "relu", tensors, 3, size=SIZE, shard=(4, 5), progress=False)
    assert empty.seen == 0 and empty.images == [] and empty["relu"].values.shape == (3, 0)
    full = top_examples(model, "relu", tensors, 3, size=SIZE, progress=False)
    assert_same(merge(empty, full), full)


def test_merge_refuses_what_does_not_fit(planted):
    model = colour_net()
    a = top_examples(model, "relu", planted, 2, size=SIZE, progress=False)
    b = top_examples(model, "relu", planted, 3, size=SIZE, progress=False)
    with pytest.raises(ValueError, match="different k"):
        merge(a, b)
    c = top_examples(model, "down", planted, 2, size=SIZE, progress=False)
    with pytest.raises(ValueError, match="different layers"):
        merge(a, c)
    d = top_examples(model, "relu", list(readable(planted).values()), 2, size=SIZE, progress=False)
    with pytest.raises(ValueError, match="different root"):
        merge(a, d)
    with pytest.raises(ValueError, match="at least one"):
        merge()


# ------------------------------------------------------------------------------ the one pass
def test_each_image_is_decoded_once_and_one_forward_per_batch(planted, monkeypatch):
    calls: Counter[str] = Counter()
    real = dx.load_image

    def counting(source, *args, **kwargs):
        calls[str(source)] += 1
        return real(source, *args, **kwargs)

    monkeypatch.setattr(dx, "load_image", counting)
    model = colour_net()
    forwards = []
    model.register_forward_pre_hook(lambda m, args: forwards.append(args[0].shape[0]))
    result = top_examples(model, LAYERS, planted, 2, size=SIZE, batch=5, progress=False)
    assert sorted(calls) == sorted(str(planted / n) for n in list_images(planted))
    assert set(calls.values()) == {1}
    assert result.decoded == len(calls) == 12
    # one probe forward (shapes and receptive fields), then ceil(12 / 5) batches
    assert forwards[1:] == [5, 5, 2]


def test_decoding_threads_give_the_same_result(planted):
    model = colour_net()
    a = top_examples(model, LAYERS, planted, 3, size=SIZE, batch=4, progress=False)
    b = top_examples(model, LAYERS, planted, 3, size=SIZE, batch=4, workers=2, progress=False)
    assert_same(a, b)


def test_state_stays_units_by_k(planted, monkeypatch):
    widths = []
    real = dx._best

    def watching(values, keys, pos, k):
        out = real(values, keys, pos, k)
        widths.append(out[0].shape)
        return out

    monkeypatch.setattr(dx, "_best", watching)
    model = colour_net()
    sizes = {}
    for n in (3, 12):
        tensors = [load_image(noise(i, SIZE, SIZE), SIZE) for i in range(n)]
        widths.clear()
        result = top_examples(model, LAYERS, tensors, 2, size=SIZE, batch=3, progress=False)
        assert {w[1] for w in widths} == {2} and {w[0] for w in widths} <= {3}
        sizes[n] = {layer: tuple(r.values.shape) for layer, r in result.layers.items()}
        assert len(result.images) <= sum(r.values.numel() for r in result.layers.values())
    assert sizes[3] == sizes[12]  # independent of the number of images
    few = top_examples(model, "relu", tensors[:1], 5, size=SIZE, progress=False)
    assert few["relu"].values.shape == (3, 1)  # fewer images than k


# ------------------------------------------------------------------------------ unreadable files
def test_unreadable_files_are_skipped_and_counted(planted):
    model = colour_net()
    clean = top_examples(model, LAYERS, planted, 3, size=SIZE, progress=False)
    (planted / "notes.txt").write_text("a text file among the images\n")
    (planted / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00garbage" * 20)
    png = (planted / "noise2.png").read_bytes()
    (planted / "a" / "cut.png").write_bytes(png[: len(png) // 3])
    with pytest.warns(UnreadableImageWarning, match="skipped 3 unreadable file") as caught:
        result = top_examples(model, LAYERS, planted, 3, size=SIZE, progress=False)
    assert len(caught) == 1
    reasons = dict(result.skipped)
    assert sorted(reasons) == ["a/broken.jpg", "a/cut.png", "notes.txt"]
    assert "not a JPEG or PNG" in reasons["notes.txt"]
    assert "cannot decode" in reasons["a/broken.jpg"] and "cannot decode" in reasons["a/cut.png"]
    assert result.seen == result.decoded == clean.seen
    for layer in LAYERS:
        assert torch.equal(result[layer].values, clean[layer].values)
        assert [result.images[i] for i in result[layer].image_index.flatten()] == [
            clean.images[i] for i in clean[layer].image_index.flatten()
        ]


def test_an_empty_folder_is_an_error_that_names_it(tmp_path):
    empty = tmp_path / "no_images_here"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"no_images_here.*holds no files"):
        top_examples(colour_net(), "relu", empty, progress=False)
    with pytest.raises(ValueError, match="no such folder or file"):
        top_examples(colour_net(), "relu", tmp_path / "missing", progress=False)


def test_a_folder_of_unreadable_files_is_an_error(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    with (
        pytest.warns(UnreadableImageWarning),
        pytest.raises(ValueError, match=r"no readable image.*unreadable"),
    ):
        top_examples(colour_net(), "relu", tmp_path, progress=False)


# ------------------------------------------------------------------------------ inputs
def test_tensors_and_pil_images_give_the_folder_result_with_index_ids(planted):
    model = colour_net()
    names = list_images(planted)
    by_folder = top_examples(model, LAYERS, planted, 3, size=SIZE, progress=False)
    tensors = list(readable(planted).values())
    by_tensor = top_examples(model, LAYERS, iter(tensors), 3, size=SIZE, progress=False)
    assert by_tensor.decoded == 0 and by_tensor.seen == len(names)
    assert [names[i] for i in by_tensor.images] == by_folder.images
    for layer in LAYERS:
        assert torch.equal(by_tensor[layer].values, by_folder[layer].values)
        assert torch.equal(by_tensor[layer].image_index, by_folder[layer].image_index)
    with pytest.raises(ValueError, match="pass it again as image="):
        by_tensor.crop("relu", 0)
    best = by_tensor.examples("relu", 0)[0].image
    assert torch.equal(by_tensor.crop("relu", 0, image=tensors[best]), by_folder.crop("relu", 0))
    pils = [Image.open(planted / n) for n in names if n.endswith(".png")]
    by_pil = top_examples(model, "relu", pils, 2, size=SIZE, progress=False)
    assert by_pil.seen == len(pils)
    batch = torch.stack(tensors)  # a (B, C, H, W) tensor is B images
    assert top_examples(model, "relu", batch, 2, size=SIZE, progress=False).seen == len(names)


def test_a_list_of_files_names_images_by_their_paths(planted):
    files = [planted / n for n in reversed(list_images(planted))]
    result = top_examples(colour_net(), "relu", files, 2, size=SIZE, progress=False)
    assert result.root is None and all(Path(i).is_absolute() for i in result.images)
    assert result.images == sorted(result.images)
    assert result.crop("relu", 1).shape[0] == 3


def test_load_image_covers_and_center_crops(tmp_path):
    arr = np.zeros((32, 64, 3), np.uint8)  # wide: the middle 32 columns are kept
    arr[:, :16, 0] = 255
    arr[:, 16:48, 2] = 255
    arr[:, 48:, 1] = 255
    Image.fromarray(arr).save(tmp_path / "wide.png")
    img = load_image(tmp_path / "wide.png", 32)
    assert img.shape == (3, 32, 32) and img.dtype == torch.float32
    assert torch.equal(img[2], torch.ones(32, 32)) and img[:2].max() == 0
    gray = load_image(tmp_path / "wide.png", (16, 8), channels=1)
    assert gray.shape == (1, 16, 8) and 0 <= gray.min() <= gray.max() <= 1
    big = load_image(torch.rand(3, 64, 96), 32)
    assert big.shape == (3, 32, 32)
    assert torch.equal(load_image((tmp_path / "wide.png").read_bytes(), 32), img)
    with pytest.raises(UnreadableImageError, match="not a JPEG or PNG"):
        load_image(b"GIF89a....", 32)
    grey = load_image(torch.full((1, 8, 8), 0.25), 8)  # grey is spread over the 3 channels
    assert grey.shape == (3, 8, 8) and torch.equal(grey, torch.full((3, 8, 8), 0.25))
    with pytest.raises(ValueError, match=r"1 \(grey\), 3 \(RGB\) or 4 \(RGBA\) channels"):
        load_image(torch.rand(2, 8, 8), 32)
    with pytest.raises(ValueError, match="has 3 channels; the model takes 4"):
        load_image(tmp_path / "wide.png", 32, channels=4)


def test_a_gray_model_reads_files_as_gray(planted):
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU())
    result = top_examples(model, "1", planted, 2, size=SIZE, progress=False)
    assert result.channels == 1 and result.crop("1", 0).shape[0] == 1


def test_bad_arguments_say_what_is_wrong(planted):
    model = colour_net()
    run = dict(size=SIZE, progress=False)
    with pytest.raises(ValueError, match="k must be an int >= 1, got 0"):
        top_examples(model, "relu", planted, 0, **run)
    with pytest.raises(TypeError, match="k must be an int"):
        top_examples(model, "relu", planted, 2.5, **run)
    with pytest.raises(LayerNotFoundError, match="closest: 'relu'"):
        top_examples(model, "reluu", planted, **run)
    with pytest.raises(ValueError, match="at least one layer"):
        top_examples(model, [], planted, **run)
    with pytest.raises(ValueError, match=r"shard index must be in 0..1"):
        top_examples(model, "relu", planted, shard=(2, 2), **run)
    with pytest.raises(TypeError, match="images must be a folder"):
        top_examples(model, "relu", 5, **run)
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module"):
        top_examples("model", "relu", planted, **run)
    tokens = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(2))  # (B, C, L): no map, no vector
    with pytest.raises(ValueError, match="need \\(B, C, H, W\\)"):
        top_examples(tokens, "1", planted, **run)
    result = top_examples(model, ["flat", "relu"], planted, 2, **run)
    assert result["flat"].positions is None and result.examples("flat", 0)[0].box is None
    with pytest.raises(ValueError, match="flat"):
        result.crop("flat", 0)
    with pytest.raises(IndexError, match="unit index 3 out of range"):
        result.crop("relu", 3)
    with pytest.raises(KeyError, match="no layer 'down'"):
        result["down"]
    no_fields = top_examples(model, "relu", planted, 2, fields=False, **run)
    with pytest.raises(ValueError, match="no receptive field"):
        no_fields.crop("relu", 0)


def test_the_model_is_left_as_it_was(planted):
    model = colour_net()
    model.train()
    before = model_state(model)
    top_examples(model, LAYERS, planted, 2, size=SIZE, progress=False)
    assert_same_state(before, model)

    def interrupted():
        yield torch.rand(3, SIZE, SIZE)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        top_examples(model, LAYERS, interrupted(), 2, size=SIZE, batch=1, progress=False)
    assert_same_state(before, model)


def test_normalize_goes_before_the_model(planted):
    model = colour_net()
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    result = top_examples(
        model, "relu", planted, 2, size=SIZE, normalize=(mean, std), progress=False
    )
    tensors = {n: (t - 0.5) / 0.25 for n, t in readable(planted).items()}
    want = brute_force(model, ["relu"], tensors, 2, batch=32)["relu"]
    for c in range(3):
        assert [e.image for e in result.examples("relu", c)] == [w[1] for w in want[c]]


def test_natural_photographs_from_scikit_image():
    data = pytest.importorskip("skimage.data")
    photos = [data.astronaut(), data.coffee(), data.chelsea()]
    model = colour_net()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = top_examples(
            model,
            ["relu", "flat"],
            [Image.fromarray(p) for p in photos],
            2,
            size=64,
            progress=False,
        )
    best = result.examples("relu", 0)[0].image
    crop = result.crop("relu", 0, image=Image.fromarray(photos[best]))
    assert result.seen == 3 and crop.shape[0] == 3 and 2 <= min(crop.shape[1:]) <= 3
