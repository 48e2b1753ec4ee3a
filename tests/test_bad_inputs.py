"""Bad input, as a table: each row is a call, the error it must raise and the words it must say.

Add a row for every new argument. Rows name what was expected and what was given; none may end
in an error from torch's or numpy's internals.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch import nn

import midnite
import midnite.analysis
from midnite import metrics, plot, store
from midnite.cli import common
from midnite.engine import Crops, Init
from midnite.errors import UsageError
from midnite.images import UnreadableImageError
from midnite.images import load as load_image
from midnite.models import load
from midnite.visualization.base import ChannelSplit, PixelActivation, ResizeTransform, SplitSelector

NAN_IMAGE = torch.full((3, 4, 4), float("nan"))
TINY = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))
EMPTY_IMAGE = torch.zeros(3, 0, 4)


def _rgb_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU())


def _render(**kw):
    kw = {"size": 8, "steps": 1, "progress": False, **kw}
    return midnite.render(_rgb_net(), midnite.objectives.channel("1", 0), **kw)


def _record() -> dict:
    """A valid ``midnite.record/3`` object."""
    return {
        "format": store.FORMAT, "model": "m", "layer": "", "unit": 0, "objective": "class",
        "key": {}, "run": {}, "metrics": {}, "activation": {"start": 0.0, "final": 1.0},
        "image": {"file": "a.png", "sha256": "0" * 64},
    }  # fmt: skip


def _mkdir(path):
    path.mkdir()
    return path


def _write(path, text: str):
    path.write_text(text)
    return path


def _linked_layer(tmp_path):
    """An output folder whose layer folder ``conv`` is a symlink to a folder outside it."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "conv").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    return tmp_path / "out"


def _bomb(tmp_path):
    """A PNG of 10000x10000 one-bit pixels: small on disk, over Pillow's pixel limit."""
    Image.new("1", (10_000, 10_000)).save(tmp_path / "bomb.png")
    return tmp_path / "bomb.png"


def _model_file(tmp_path, source: str) -> str:
    path = tmp_path / "user_model.py"
    path.write_text(source)
    return f"{path}:make"


# (id, call taking tmp_path, error type, regex the message must match)
ROWS = [
    # the store: records, keys, paths (midnite.store)
    (
        "record with unit -1",
        lambda t: store.UnitRecord.from_json({**_record(), "unit": -1}),
        store.RecordError,
        r"'unit' must be an integer >= 0, got number -1",
    ),
    (
        "record image outside its folder",
        lambda t: store.check_record(
            {**_record(), "image": {"file": "../x.png", "sha256": "0" * 64}}
        ),
        ValueError,
        r"'image.file' must be a file name in the record's folder, got string '../x.png'",
    ),
    (
        "record of an unknown version",
        lambda t: store.UnitRecord.from_json({**_record(), "format": "midnite.record/0"}),
        store.RecordError,
        r"'format' must be one of midnite.record/1, .*, got string 'midnite.record/0'",
    ),
    (
        "batch_seed with a float unit",
        lambda t: store.batch_seed(0, "conv", "channel", [0.5]),
        UsageError,
        r"each unit must be an int, got float: 0.5",
    ),
    (
        "plan_batches batch=0",
        lambda t: store.plan_batches([0, 1], 0),
        UsageError,
        r"batch must be an int >= 1, got 0",
    ),
    (
        "output path ../x",
        lambda t: store.inside(t, "layer", "../x.png", write=True),
        store.PathError,
        r"path component 2 must be one path component without '/', got '../x.png'",
    ),
    (
        "output path of 256 bytes",
        lambda t: store.component("a" * 256),
        UsageError,
        r"name must be at most 255 bytes in UTF-8, got 256 bytes",
    ),
    (
        "layer folder of 300 bytes",
        lambda t: store.site_files.layer_folder("n" * 300),
        store.PathError,
        r"the folder of layer 'n+' must be at most 255 bytes in UTF-8, got 300 bytes",
    ),
    (
        "page where a folder stands",
        lambda t: store.atomic_write_text(_mkdir(t / "index.html"), "<p>"),
        store.PathError,
        r"index.html' is a folder where midnite writes a file; move it away and run again",
    ),
    (
        "examples into a symlinked layer folder",
        lambda t: store.site_files.write_examples(_linked_layer(t), None, ["conv"]),
        store.PathError,
        r"conv' is a symbolic link; midnite writes only into real folders under",
    ),
    (
        "--out name over 255 bytes",
        lambda t: common.prepare_out(str(t / ("a" * 300) / "b")),
        UsageError,
        r"--out: each folder name must be at most 255 bytes, got one of 300 bytes",
    ),
    (
        "--out with NUL",
        lambda t: common.prepare_out(f"{t}/a\0b"),
        UsageError,
        r"--out must be a path without NUL characters, got",
    ),
    (
        "model file calling sys.exit on import",
        lambda t: common.load(_model_file(t, "import sys\nsys.exit(3)\n")),
        UsageError,
        r"could not load model '.*user_model.py:make': it called sys.exit\(3\) while loading",
    ),
    (
        "command on a 5-channel model",
        lambda t: common.layer_table(nn.Conv2d(5, 4, 3), "net5", (8, 8), "cpu"),
        UsageError,
        r"net5 takes 5 input channels; the commands save PNG images of 1, 3 or 4 channels",
    ),
    (
        "decompression bomb",
        lambda t: load_image(_bomb(t)),
        UnreadableImageError,
        r"bomb.png': 10000x10000 pixels, over Pillow's limit of \d+ \(a decompression bomb\?\)",
    ),
    (
        "JSON file nested 100 deep",
        lambda t: store.read_json(_write(t / "deep.json", "[" * 100 + "]" * 100)),
        store.DamagedError,
        r"'.*deep.json' nests 100 levels deep \(at most 64 are read\)",
    ),
    (
        "custom objective returning a list",
        lambda t: midnite.render(
            TINY,
            midnite.objectives.custom("0", lambda act: [1.0]),
            size=8,
            steps=1,
            progress=False,
        ),
        TypeError,
        r"objective 'custom' must return a tensor of one value per image, shape \(1,\), got list",
    ),
    (
        "render a half-precision model",
        lambda t: midnite.render(
            nn.Conv2d(3, 4, 3).half(), midnite.objectives.channel("", 0), size=8, steps=1
        ),
        UsageError,
        r"the model's weights must be float32, got torch.float16 \('weight'\); pass a float32 copy",
    ),
    (
        "top_examples on a half-precision model",
        lambda t: midnite.analysis.top_examples(
            nn.Sequential(nn.Conv2d(3, 4, 3)).half(), ["0"], [torch.rand(3, 8, 8)]
        ),
        UsageError,
        r"the model's weights must be float32, got torch.float16",
    ),
    (
        "PixelActivation layer=5",
        lambda t: PixelActivation(TINY, SplitSelector(ChannelSplit(), [0]), layer=5),
        TypeError,
        r"layer must be a layer name \(str\) or a non-empty list of names, got int: 5",
    ),
    (
        "ResizeTransform(1e9)",
        lambda t: ResizeTransform(1e9)(torch.rand(3, 8, 8)),
        ValueError,
        r"resizing a 8x8 image by 1e\+09 would make it 8000000000x8000000000; sides up to 32768",
    ),
    (
        "layers of a str",
        lambda t: midnite.layers("str"),
        TypeError,
        r"model must be a torch.nn.Module, got str",
    ),
    (
        "device meta",
        lambda t: midnite.engine.resolve_device("meta"),
        ValueError,
        r"'meta' holds no values",
    ),
    (
        "device nonsense",
        lambda t: midnite.engine.resolve_device("gpu7"),
        ValueError,
        r"torch device such as 'cpu' or 'cuda:0', got 'gpu7'",
    ),
    ("show NaN", lambda t: plot.to_hwc(NAN_IMAGE), ValueError, r"48 NaN or infinite values of 48"),
    (
        "show empty",
        lambda t: plot.to_hwc(EMPTY_IMAGE),
        ValueError,
        r"image with pixels, got an empty tensor \(3, 0, 4\)",
    ),
    (
        "show int64",
        lambda t: plot.to_hwc(torch.zeros(3, 2, 2, dtype=torch.long)),
        TypeError,
        r"floating-point image in \[0, 1\] or a uint8 image in 0..255, got dtype torch.int64",
    ),
    ("normalized NaN", lambda t: plot.normalized(NAN_IMAGE), ValueError, r"NaN or infinite"),
    (
        "save_png NaN",
        lambda t: plot.save_png(NAN_IMAGE, t / "x.png"),
        ValueError,
        r"NaN or infinite",
    ),
    (
        "save_png missing folder",
        lambda t: plot.save_png(torch.rand(3, 2, 2), t / "no" / "x.png"),
        FileNotFoundError,
        r"x.png'.*its folder '.*no' does not exist",
    ),
    (
        "contact_sheet NaN",
        lambda t: plot.contact_sheet([NAN_IMAGE]),
        ValueError,
        r"NaN or infinite",
    ),
    (
        "metric of NaN images",
        lambda t: metrics.total_variation(NAN_IMAGE),
        ValueError,
        r"images must be finite, got 48 NaN or infinite values of 48",
    ),
    (
        "metric of empty images",
        lambda t: metrics.colorfulness(torch.zeros(0, 3, 4, 4)),
        ValueError,
        r"at least one image, got shape \(0, 3, 4, 4\)",
    ),
    (
        "naturalness reference of another size",
        lambda t: metrics.naturalness(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 40, 40)),
        ValueError,
        r"reference must have the images' size 32x32 \(the metrics depend on size\), got 40x40",
    ),
    (
        "naturalness of images below the shipped sizes",
        lambda t: metrics.naturalness(torch.rand(1, 3, 8, 8)),
        ValueError,
        r"shipped naturalness reference starts at 32 px; images of 8x8 px are smaller",
    ),
    (
        "naturalness of a flat reference",
        lambda t: metrics.naturalness(torch.rand(1, 3, 8, 8), torch.zeros(2, 3, 8, 8)),
        ValueError,
        r"reference must have high-frequency energy and total variation > 0 .*got 0 and 0",
    ),
    (
        "model file that fails to import",
        lambda t: load(_model_file(t, "import no_such_module_here\n")),
        ImportError,
        r"user_model.py' failed to import: ModuleNotFoundError: No module named",
    ),
    (
        "model file with a syntax error",
        lambda t: load(_model_file(t, "def make(:\n")),
        ImportError,
        r"user_model.py' failed to import: SyntaxError",
    ),
    (
        "init with 2 channels",
        lambda t: _render(init=torch.rand(2, 8, 8)),
        ValueError,
        r"init must have 1 \(grey\), 3 \(RGB\) or 4 \(RGBA\) channels and a size of at least "
        r"1x1, got shape \(2, 8, 8\)",
    ),
    (
        "init with a canvas",
        lambda t: _render(init=torch.rand(3, 8, 8), param="pixel", crops=Crops(canvas=12)),
        ValueError,
        r"init starts the render from images of its size; a canvas .* got "
        r"crops=Crops\(count=4, .*canvas=\(12, 12\)\)",
    ),
    (
        "init not an image",
        lambda t: _render(init=[[0.5]]),
        TypeError,
        r"init must be an image: a torch.Tensor, a numpy array or a PIL image .*got list",
    ),
    (
        "init out of range",
        lambda t: _render(init=torch.full((3, 8, 8), 2.0)),
        ValueError,
        r"init: float values must be in \[0, 1\] \(uint8: 0-255\), got values in \[2, 2\]",
    ),
    (
        "init NaN",
        lambda t: _render(init=torch.full((3, 8, 8), float("nan"))),
        ValueError,
        r"init must hold only finite values, got NaN or inf",
    ),
    (
        "init int64",
        lambda t: _render(init=torch.zeros(3, 8, 8, dtype=torch.int64)),
        TypeError,
        r"init must be uint8 \(0-255\) or float in \[0, 1\], got dtype torch.int64",
    ),
    (
        "init batch 2 for batch 3",
        lambda t: _render(init=torch.rand(2, 3, 8, 8), batch=3),
        ValueError,
        r"init must hold 1 image or batch=3 images, got 2 \(shape \(2, 3, 8, 8\)\)",
    ),
    (
        "init_penalty, a removed keyword",
        lambda t: _render(init_penalty=1.0),
        TypeError,
        r"render\(\) got an unexpected setting 'init_penalty'; use init=Init\(image, "
        r"penalty=...\); settings: size, batch, ",
    ),
    (
        "init penalty negative",
        lambda t: _render(init=Init(torch.rand(3, 8, 8), penalty=-1.0)),
        ValueError,
        r"init.penalty must be a finite number >= 0, got -1.0",
    ),
    (
        "init layer without its penalty",
        lambda t: _render(init=Init(torch.rand(3, 8, 8), layer="0")),
        ValueError,
        r"init.layer and init.layer_penalty go together .*got layer='0', layer_penalty=0.0",
    ),
    (
        "init layer unknown",
        lambda t: _render(init=Init(torch.rand(3, 8, 8), layer="l", layer_penalty=1.0)),
        ValueError,
        r"no layer named 'l' in Sequential",
    ),
    (
        "init layer not a str",
        lambda t: _render(init=Init(torch.rand(3, 8, 8), layer=1, layer_penalty=1.0)),
        TypeError,
        r"init.layer must be a layer name \(str\) or None, got int 1",
    ),
    (
        "steps 0 without init",
        lambda t: _render(steps=0),
        ValueError,
        r"steps must be an int >= 1, got 0",
    ),
    (
        "seed 2**64",
        lambda t: _render(seed=2**64),
        ValueError,
        r"seed must be an int in \[0, 2\*\*63\), got 18446744073709551616",
    ),
    (
        "negative seed",
        lambda t: midnite.engine.make_generator(-1, torch.device("cpu")),
        ValueError,
        r"seed must be an int in \[0, 2\*\*63\), got -1",
    ),
    (
        "steps absurd",
        lambda t: _render(steps=10**14),
        ValueError,
        r"steps must be at most 1000000, got 100000000000000",
    ),
    (
        "channels 4 on an RGB model",
        lambda t: _render(channels=4),
        ValueError,
        r"channels=4: the images have 4 channels, but the model's first convolution '0' expects "
        r"3; use channels=3",
    ),
    (
        "render canvas=0",
        lambda t: _render(crops=Crops(canvas=0)),
        ValueError,
        r"crops.canvas must be a positive int or \(height, width\) of positive ints, got 0",
    ),
    (
        "render canvas, a removed keyword",
        lambda t: _render(canvas=12),
        TypeError,
        r"render\(\) got an unexpected setting 'canvas'; use crops=Crops\(canvas=...\)",
    ),
    (
        "render crops count 0",
        lambda t: _render(param="maco", crops=Crops(count=0)),
        ValueError,
        r"crops.count must be an int >= 1, got 0",
    ),
    (
        "render crops scale (0.5, 2)",
        lambda t: _render(param="maco", crops=Crops(scale=(0.5, 2))),
        ValueError,
        r"crops.scale\[1\] must be a finite number > 0 and <= 1, got 2",
    ),
    (
        "render crops noise -1",
        lambda t: _render(param="maco", crops=Crops(noise=-1)),
        ValueError,
        r"crops.noise must be a finite number >= 0, got -1",
    ),
    (
        "render crops as a bare count",
        lambda t: _render(crops=4),
        TypeError,
        r"crops must be a Crops\(count, scale, noise, canvas\) or None, got int 4",
    ),
    (
        "render recipe='nope'",
        lambda t: _render(recipe="nope"),
        ValueError,
        r"unknown recipe 'nope'; recipes: class, feature, natural, transformer",
    ),
    (
        "render param='lucid'",
        lambda t: _render(param="lucid"),
        ValueError,
        r"param must be one of \('fourier', 'pixel', 'maco'\), got 'lucid'",
    ),
    (
        "magnitude_from_images of an empty folder",
        lambda t: midnite.analysis.magnitude_from_images(t),
        ValueError,
        r"the folder '.*' holds no files",
    ),
    # the command line's folders and options (#23, #24)
    (
        "--size '' (an empty size)",
        lambda t: _cli_options().optional_size(""),
        ValueError,
        r"malformed size ''; accepted: N or HxW, e.g. 224 or 128x160",
    ),
    (
        "render --out into a catalogue folder",
        lambda t: _cli_folders().check_for(_catalogue_folder(t), "render"),
        ValueError,
        r"holds the results of 'midnite catalogue' .*; give another --out, or add to it with "
        r"'midnite catalogue'",
    ),
    (
        "catalogue --out into a render folder",
        lambda t: _cli_folders().check_for(_render_folder(t), "catalogue"),
        ValueError,
        r"holds the results of 'midnite render' .*; give another --out, or add to it with "
        r"'midnite render'",
    ),
    (
        "index.html replaced by a folder",
        lambda t: _cli_folders().check_for(_index_folder(t), "render"),
        ValueError,
        r"index.html' is not a file \(a folder or a link\), so the page midnite writes there "
        r"cannot be; move it away or give another --out",
    ),
    (
        "gallery of a folder without results",
        lambda t: _cli_main(["gallery", str(t)]),
        ValueError,
        r"no midnite results \(PNG \+ JSON record\) in '.*'; 'midnite render \.\.\. --out DIR' "
        r"or 'midnite catalogue \.\.\. --out DIR' writes them",
    ),
]


def _cli_options():
    from midnite.cli import options

    return options


def _cli_folders():
    from midnite.cli import folders

    return folders


def _cli_main(argv):
    """Run a command; its one-line error raised, not printed."""
    from midnite.cli import COMMANDS, build_parser

    args = build_parser().parse_args(argv)
    args.argv = argv
    return COMMANDS[args.command].run(args)


def _catalogue_folder(tmp_path):
    (tmp_path / "catalogue.json").write_text("{}")
    return tmp_path


def _render_folder(tmp_path):
    (tmp_path / "l_channel_0000.json").write_text("{}")
    (tmp_path / "l_channel_0000.png").write_bytes(b"")
    return tmp_path


def _index_folder(tmp_path):
    (tmp_path / "index.html").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    ("call", "error", "message"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_bad_input_is_named(tmp_path, call, error, message):
    with pytest.raises(error, match=message):
        call(tmp_path)


def test_uint8_images_are_scaled_not_clamped(tmp_path):
    img = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 1, 3).expand(3, 1, 3)
    assert plot.to_hwc(img)[0, :, 0].tolist() == pytest.approx([0.0, 128 / 255, 1.0])
    assert plot.to_uint8(img)[0, :, 0].tolist() == [0, 128, 255]
