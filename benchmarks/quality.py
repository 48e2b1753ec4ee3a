"""Quality of class visualizations and of a known-answer recovery, as tables.

Sections:
  classes   Ten ImageNet classes rendered on EfficientNet-Lite0 by three methods: the classic
            notebook's class cell, its combined-regularizers cell (cell 10) applied to the class
            neuron, and ``midnite.render`` with the class recipe's defaults. Each image is judged
            by Lite0 (sanity: the model it was made on) and by Lite1 and Lite2 (transferability as
            in MACO: top-1 and top-5), at each judge's native size. Plus naturalness
            (``metrics.naturalness(size=NATURAL_SIZE)``; --quick: at its own size) beside the
            shipped 25 crops of five photos: spectrum slope (difference), HF share and total
            variation (ratios); "natural": issue #13's bar (0.3, 2x), "photo band": where single
            photos lie (``within_photos``); colourfulness (median at 224 px); a photos row;
            seconds. ``--recipes NAME,...`` adds a row per recipe, ``--recipe-settings JSON``
            overrides its settings (e.g. ``'{"steps": 128, "crops": {"count": 2}, "colour":
            {"saturation": 1.0, "mean": false}}'``), ``--seed``; ``--only-recipes`` drops other
            rows.
  recovery  grating_net()'s planted grating detector (a known answer): recovery score of
            render()'s default (feature recipe), of the classic PixelActivation, of uniform noise
            (chance) and of the planted pattern itself (ceiling). Threshold 0.2: over ten times
            noise and about a quarter of what plain gradient ascent reaches (midnite.known_answer).

The ten classes (``CLASSES``) were chosen for a strong visual identity and fixed BEFORE any
tuning of the class recipe; they were not re-picked after seeing results. ``--class-set other``
renders ten other classes (``OTHER_CLASSES``, fixed on 2026-12-03 before rendering them, never
tuned on) to check that what was tuned on the ten holds beyond them. The classes table is
followed by naturalness against the held-out photographs (``photos.HELD_OUT``, never tuned on)
where they are installed.

``--out DIR`` saves every image (``DIR/<method>/<class>.png``), a sheet per method, ``classes.png``
(a labelled row per method, a column per class, the photos last) and ``recovery.png`` (seed 0).

The classic API renders one image at a time. Its class cell (300 iterations of 10 steps from 300 px,
growing 0.5% per iteration to ~1300 px: hours per image on a CPU) is cut to
``CLASSIC_CLASS_ITER_N`` iterations from 224 px; the settings column says so. Both classic cells
maximize the softmax probability (the notebook's class neuron is a softmax output); the class cell's
image is judged min-max normalized, as the notebook shows it (``show_normalized``).

    python benchmarks/quality.py [--sections classes,recovery] [--device cuda] [--json F] [--out D]
                                 [--threads N] [--recipes natural,...] [--only-recipes]
    python benchmarks/quality.py --quick      # a smoke run of seconds (used by the tests)
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from pathlib import Path

# On a CPU shared with other processes, OpenMP threads that spin while waiting for each other
# made torch's default 2-thread run 20-100x slower here (a 4-step render: 22 s instead of 0.13 s);
# sleeping waits avoid that and cost little otherwise. It must be set before torch loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, sync, table, write_json

import midnite
from midnite import RenderResult, recipes
from midnite.engine.objectives import channel, class_logit
from midnite.engine.settings import Crops, MacoColour
from midnite.known_answer import grating_net, planted_pattern, recovery_score
from midnite.metrics import Naturalness, at_size, colorfulness, naturalness, transferability
from midnite.models import efficientnet_lite
from midnite.photos import PhotosMissingError, held_out_photos, load_photos, reference_crops
from midnite.plot import contact_sheet, normalized, save_png, to_uint8
from midnite.visualization.base import (
    BilateralTransform,
    BlurTransform,
    ChannelSplit,
    NeuronSplit,
    PixelActivation,
    RandomTransform,
    ResizeTransform,
    SplitSelector,
    TVRegularization,
    WeightDecay,
)

#: ImageNet class index -> name; fixed before tuning (see the module docstring).
CLASSES: dict[int, str] = {
    1: "goldfish",
    130: "flamingo",
    291: "lion",
    323: "monarch butterfly",
    327: "starfish",
    417: "balloon",
    783: "screw",
    949: "strawberry",
    963: "pizza",
    980: "volcano",
}
OTHER_CLASSES: dict[int, str] = {
    9: "ostrich",
    22: "bald eagle",
    99: "goose",
    207: "golden retriever",
    281: "tabby cat",
    340: "zebra",
    430: "basketball",
    511: "convertible",
    817: "sports car",
    954: "banana",
}
CLASS_SETS = {"ten": CLASSES, "other": OTHER_CLASSES}
NAMES = {**CLASSES, **OTHER_CLASSES}

#: Judges and their native input sizes.
JUDGES = {"Lite0": (0, 224), "Lite1": (1, 240), "Lite2": (2, 260)}
#: The classic class cell's iterations here (the notebook: 300) and its start size (300).
CLASSIC_CLASS_ITER_N = 12
CLASSIC_CLASS_INIT = 224
#: Recovery threshold (see the module docstring and ``midnite.known_answer.recovery_score``).
RECOVERY_THRESHOLD = 0.2

#: Naturalness is measured at this size (the photos' reference and Lite0's input).
NATURAL_SIZE = 224
#: issue #13's bar for a natural-looking recipe: slope within 0.3 of the photos', HF energy and
#: total variation at most twice theirs.
NATURAL_SLOPE, NATURAL_RATIO = 0.3, 2.0
PHOTOS_ROW = "photos (reference)"

METHODS = ("classic: class cell", "classic: combined cell", "midnite: class recipe")


def _softmax_net(lite0: nn.Module) -> nn.Module:
    return nn.Sequential(lite0, nn.Softmax(dim=1)).eval()


def classic_class_cell(lite0: nn.Module, classes: list[int], dev: torch.device, quick: bool):
    """The notebook's cell 13 (class visualization), iterations cut; images min-max normalized."""
    iter_n, opt_n, init = (2, 2, 48) if quick else (CLASSIC_CLASS_ITER_N, 10, CLASSIC_CLASS_INIT)
    net = _softmax_net(lite0)
    images = []
    for c in classes:
        pa = PixelActivation(
            net,
            SplitSelector(NeuronSplit(), [c]),
            transform=RandomTransform(scale_fac=0) + BilateralTransform() + ResizeTransform(1.005),
            opt_n=opt_n,
            iter_n=iter_n,
            regularization=[WeightDecay(decay_factor=1.5e-7), TVRegularization(coefficient=0.05)],
            init_size=init,
            lr=0.007,
            seed=0,
            device=dev,
            progress=False,
        )
        images.append(normalized(pa.visualize()))
    settings = (
        f"softmax; iter_n {iter_n} of 300 (cut for time), opt_n {opt_n}, "
        f"init {init} px (notebook: 300), lr 0.007; shown normalized"
    )
    return images, settings


def classic_combined_cell(lite0: nn.Module, classes: list[int], dev: torch.device, quick: bool):
    """The notebook's cell 10 (random + blur + resize, TV + weight decay) on the class neuron."""
    iter_n, opt_n, init = (2, 2, 32) if quick else (12, 20, 50)
    net = _softmax_net(lite0)
    images = []
    for c in classes:
        pa = PixelActivation(
            net,
            SplitSelector(NeuronSplit(), [c]),
            transform=RandomTransform() + BlurTransform() + ResizeTransform(),
            regularization=[TVRegularization(), WeightDecay(decay_factor=3e-4)],
            init_size=init,
            iter_n=iter_n,
            opt_n=opt_n,
            seed=0,
            device=dev,
            progress=False,
        )
        images.append(pa.visualize())
    settings = f"softmax; iter_n {iter_n}, opt_n {opt_n}, init {init} px, lr 0.01 (defaults)"
    return images, settings


def midnite_class_recipe(lite0: nn.Module, classes: list[int], dev: torch.device, quick: bool):
    """``midnite.render`` on the class logits, all classes in one batch, recipe defaults."""
    extra = {"size": 64, "steps": 4} if quick else {}
    result = midnite.render(
        lite0, [class_logit(c) for c in classes], device=dev, progress=False, **extra
    )
    s = result.settings
    settings = (
        f"recipe '{s['recipe']}': {s['steps']} steps, lr {s['lr']:g}, {s['param']}, "
        f"transforms '{recipes.CLASS.transforms}', {s['size'][0]} px, one batch"
    )
    return list(result.images), settings


RUNNERS = {
    "classic: class cell": classic_class_cell,
    "classic: combined cell": classic_combined_cell,
    "midnite: class recipe": midnite_class_recipe,
}


def recipe_names() -> list[str]:
    """The recipes this midnite has: ``recipes.RECIPES`` where it exists, else its constants."""
    registry = getattr(recipes, "RECIPES", None)
    if isinstance(registry, dict):
        return sorted(registry)
    return sorted(r.name for r in vars(recipes).values() if isinstance(r, recipes.Recipe))


def takes_recipe() -> bool:
    """Whether this midnite's ``render`` takes ``recipe=NAME``."""
    return "recipe" in inspect.signature(midnite.render).parameters


def render_recipe(model: nn.Module, objective, recipe: str, **settings) -> RenderResult:
    """``midnite.render`` with the recipe named ``recipe``; ``settings`` override its values.

    Passes ``recipe=`` where ``render`` takes it (recipes by name, issue #13 item 4). Where it
    does not yet, it passes the named ``midnite.recipes`` constant's steps, lr, param,
    decorrelate and transforms explicitly (same images; ``settings['recipe']`` then records the
    objective's own recipe). A recipe this midnite lacks raises ``ValueError`` naming those it has.
    """
    if takes_recipe():
        return midnite.render(model, objective, recipe=recipe, **settings)
    known = {r.name: r for r in vars(recipes).values() if isinstance(r, recipes.Recipe)}
    if recipe not in known:
        raise ValueError(f"unknown recipe {recipe!r}; this midnite has {sorted(known)}")
    r = known[recipe]
    values = {
        "steps": r.steps,
        "lr": r.lr,
        "param": r.param,
        "decorrelate": r.decorrelate,
        "transforms": r.transforms,
    }
    return midnite.render(model, objective, **{**values, **settings})


def recipe_method(name: str) -> str:
    return f"midnite: recipe '{name}'"


def _recipe_runner(name: str, overrides: dict | None = None):
    def run(lite0: nn.Module, classes: list[int], dev: torch.device, quick: bool):
        extra = {**(overrides or {}), **({"size": 64, "steps": 4} if quick else {})}
        objectives = [class_logit(c) for c in classes]
        result = render_recipe(lite0, objectives, name, device=dev, progress=False, **extra)
        s = result.settings
        h, w = result.images.shape[-2:]
        how = f"render(recipe='{name}')" if takes_recipe() else f"recipe '{name}' values"
        settings = (
            f"{how}: {s['steps']} steps, lr {s['lr']:g}, {s['param']}, "
            f"{s['size'][0]} px in, {h}x{w} px out, {s.get('crops', 'no')} crops, seed {s['seed']}"
        )
        if "colour" in s:
            settings += f", colour {s['colour']}"
        return list(result.images), settings

    return run


def _batch(images: list[Tensor]) -> Tensor:
    """Stack (C, H, W) images, resizing to the first one's size where they differ."""
    h, w = images[0].shape[-2:]
    same = [
        img
        if img.shape[-2:] == (h, w)
        else F.interpolate(img[None], size=(h, w), mode="bilinear", antialias=True)[0]
        for img in images
    ]
    return torch.stack(same).float().clamp(0, 1)


@torch.no_grad()
def target_ranks(images: Tensor, targets: Tensor, judges: dict[str, nn.Module]) -> dict:
    """1-based rank of each image's target class among each judge's logits."""
    ranks = {}
    for name, model in judges.items():
        size = JUDGES[name][1]
        dev = next(model.parameters()).device
        x = images.to(dev)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        logits = model(x).float().cpu()
        ranks[name] = ((logits > logits.gather(1, targets[:, None])).sum(1) + 1).tolist()
    return ranks


def _share(value: float, n: int) -> str:
    return f"{round(value * n)}/{n}"


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_").replace("__", "_")


def natural_columns(nat: Naturalness) -> dict[str, float | str]:
    """The naturalness columns of a row (``natural``: issue #13's bar met)."""
    return {
        "spectrum slope": nat.spectrum_slope,
        "slope - photos": nat.slope_difference,
        "HF share": nat.high_frequency_energy,
        "HF / photos": nat.high_frequency_ratio,
        "TV": nat.total_variation,
        "TV / photos": nat.total_variation_ratio,
        "natural": "yes" if nat.meets(NATURAL_SLOPE, NATURAL_RATIO) else "no",
        "photo band": "yes" if nat.within_photos() else "no",
    }


NATURAL_HEADERS = list(natural_columns(Naturalness(-2, 1, 1, -2, 1, 1, reference="")))


def at_natural_size(batch: Tensor) -> Tensor:
    """``batch`` shrunk to ``NATURAL_SIZE`` square where larger (never enlarged: that would
    smooth it and flatter its naturalness)."""
    if min(batch.shape[-2:]) <= NATURAL_SIZE:
        return batch
    size = (NATURAL_SIZE, NATURAL_SIZE)
    return F.interpolate(batch, size=size, mode="bilinear", antialias=True).clamp(0, 1)


def photos_row() -> dict:
    """The reference row: the shipped photo statistics at ``NATURAL_SIZE`` (ratios 1)."""
    # any image of that size: only the reference_* fields are used
    ref = naturalness(torch.full((1, 3, NATURAL_SIZE, NATURAL_SIZE), 0.5))
    nat = Naturalness(
        ref.reference_spectrum_slope,
        ref.reference_high_frequency_energy,
        ref.reference_total_variation,
        ref.reference_spectrum_slope,
        ref.reference_high_frequency_energy,
        ref.reference_total_variation,
        reference=ref.reference,
    )
    try:  # the reference photographs themselves (installed with the package's photos)
        crops = reference_crops(NATURAL_SIZE)
        colour: float | str = float(colorfulness(crops).median())
    except PhotosMissingError:
        colour = "-"
    return {
        "method": PHOTOS_ROW,
        "settings": f"midnite.photos, {ref.reference} (the naturalness reference)",
        **natural_columns(nat),
        "colourfulness": colour,
    }


def classes_section(
    dev: torch.device,
    quick: bool,
    out: Path | None,
    recipe_rows: tuple[str, ...] = (),
    overrides: dict | None = None,
    only_recipes: bool = False,
    class_set: str = "ten",
) -> tuple[str, dict]:
    chosen = CLASS_SETS[class_set]
    classes = list(chosen)[:2] if quick else list(chosen)
    n = len(classes)
    targets = torch.tensor(classes)
    judges = {name: efficientnet_lite(v).to(dev).eval() for name, (v, _) in JUDGES.items()}
    sizes = {name: size for name, (_, size) in JUDGES.items()}
    runners = {} if only_recipes else dict(RUNNERS)
    runners.update({recipe_method(r): _recipe_runner(r, overrides) for r in recipe_rows})
    methods = list(runners)
    rows, per_class, all_images, batches = [], {}, {}, {}
    for method in methods:
        sync(dev)
        t0 = time.perf_counter()
        images, settings = runners[method](judges["Lite0"], classes, dev, quick)
        sync(dev)
        seconds = time.perf_counter() - t0
        batch = _batch(images)
        scores = transferability(batch, targets, judges, size=sizes)
        ranks = target_ranks(batch, targets, judges)
        nat = naturalness(
            batch, size=NATURAL_SIZE if min(batch.shape[-2:]) > NATURAL_SIZE else None
        )
        row = {"method": method, "settings": settings}
        for judge in JUDGES:
            row[f"{judge} top1"] = scores[judge]["top1"]
            row[f"{judge} top5"] = scores[judge]["top5"]
        row.update(natural_columns(nat))
        row["colourfulness"] = float(colorfulness(at_size(batch, NATURAL_SIZE)).median())
        row["naturalness"] = nat.to_dict()
        row["size"] = list(batch.shape[-2:])
        row["seconds"] = seconds
        row["seconds per class"] = seconds / n
        rows.append(row)
        per_class[method] = ranks
        all_images[method] = images
        batches[method] = batch
        print(f"  {method}: {seconds:.0f} s", flush=True)
    photos = photos_row()
    if out is not None:
        _save_class_figures(out, classes, all_images)

    headers = ["method", "settings", *(f"{j} top{k}" for j in JUDGES for k in (1, 5))]
    headers += [*NATURAL_HEADERS, "colourfulness", "seconds", "seconds per class"]
    cells = [
        [r["method"], r["settings"]]
        + [_share(r[f"{j} top{k}"], n) for j in JUDGES for k in (1, 5)]
        + [r[h] for h in NATURAL_HEADERS]
        + [r["colourfulness"], r["seconds"], r["seconds per class"]]
        for r in rows
    ]
    cells.append(
        [photos["method"], photos["settings"]]
        + ["-"] * (2 * len(JUDGES))
        + [photos[h] for h in NATURAL_HEADERS]
        + [photos["colourfulness"], "-", "-"]
    )
    title = (
        f"Class visualizations made on EfficientNet-Lite0, judged by Lite0/Lite1/Lite2 "
        f"({n} classes; images classified as their class, top-1 and top-5); naturalness at "
        f"{NATURAL_SIZE} px beside natural photographs (natural: slope within {NATURAL_SLOPE}, "
        f"HF and TV at most {NATURAL_RATIO:g}x the photos')"
    )
    text = table(title, headers, cells)
    rank_rows = [
        [f"{c} {NAMES[c]}"]
        + [" / ".join(str(per_class[m][j][i]) for j in ("Lite1", "Lite2")) for m in methods]
        for i, c in enumerate(classes)
    ]
    text += "\n\n" + table(
        "Rank of the target class for Lite1 / Lite2 (1 = top-1)", ["class", *methods], rank_rows
    )
    held_text, held = held_out_naturalness(batches)
    text += held_text
    payload = {
        "classes": {str(c): NAMES[c] for c in classes},
        "natural_size": NATURAL_SIZE,
        "rows": rows,
        "photos": photos,
        "held_out": held,
        "ranks": {
            m: {j: dict(zip(map(str, classes), r, strict=True)) for j, r in v.items()}
            for m, v in per_class.items()
        },
    }
    return text, payload


def held_out_naturalness(batches: dict[str, Tensor]) -> tuple[str, dict]:
    """Each method's naturalness at ``NATURAL_SIZE`` against the held-out photographs' centre
    squares (``photos.held_out_photos``: never tuned on), as a table; empty where none is
    installed."""
    try:
        names, held = held_out_photos(NATURAL_SIZE)
    except PhotosMissingError:
        return "", {}
    rows = {}
    for method, batch in batches.items():
        nat = naturalness(batch, reference=held, size=NATURAL_SIZE)
        rows[method] = {
            "slope - photos": nat.slope_difference,
            "HF / photos": nat.high_frequency_ratio,
            "TV / photos": nat.total_variation_ratio,
            "photo band": "yes" if nat.within_photos() else "no",
        }
    cells = [[m, *r.values()] for m, r in rows.items()]
    title = (
        f"Naturalness at {NATURAL_SIZE} px against the held-out photographs ({', '.join(names)}: "
        "centre squares, never tuned on)"
    )
    return "\n\n" + table(title, ["method", *next(iter(rows.values()))], cells), rows


def labelled_rows(rows: dict[str, list[Tensor]], columns: int, side: int = 160) -> Tensor:
    """One row of images per label, the label written left of its row: ``(3, H, W)`` in [0, 1].

    Every image is resized to ``side`` px square; rows shorter than ``columns`` stay blank at the
    end.
    """
    from PIL import Image, ImageDraw

    pad, label_w = 4, 200
    tiles: list[Tensor] = []
    for images in rows.values():
        if len(images) > columns:
            raise ValueError(f"a row holds at most {columns} images, got {len(images)}")
        small = [
            F.interpolate(img[None].float(), size=(side, side), mode="bilinear", antialias=True)[0]
            for img in images
        ]
        tiles += small + [torch.ones(3, side, side)] * (columns - len(small))
    grid = Image.fromarray(to_uint8(contact_sheet(tiles, columns=columns, pad=pad)))
    canvas = Image.new("RGB", (grid.width + label_w, grid.height), "white")
    canvas.paste(grid, (label_w, 0))
    draw = ImageDraw.Draw(canvas)
    for i, label in enumerate(rows):
        lines = [""]
        for word in label.split():  # wrap to the label column
            if lines[-1] and draw.textlength(f"{lines[-1]} {word}") > label_w - 2 * pad:
                lines.append(word)
            else:
                lines[-1] = f"{lines[-1]} {word}".strip()
        text = "\n".join(lines)
        box = draw.multiline_textbbox((0, 0), text)
        y = pad + i * (side + pad) + (side - (box[3] - box[1])) // 2
        draw.multiline_text((pad, y), text, fill="black")
    data = torch.frombuffer(bytearray(canvas.tobytes()), dtype=torch.uint8)
    return data.view(canvas.height, canvas.width, 3).permute(2, 0, 1).float() / 255


def _save_class_figures(out: Path, classes: list[int], all_images: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for method, images in all_images.items():
        folder = out / _slug(method)
        folder.mkdir(parents=True, exist_ok=True)
        for c, img in zip(classes, images, strict=True):
            save_png(img, folder / f"{c:03d}_{_slug(NAMES[c])}.png")
        save_png(contact_sheet(images, columns=5), out / f"{_slug(method)}.png")
    rows = dict(all_images)
    try:  # the reference photographs as a last row, where scikit-image holds them
        photos = list(load_photos(NATURAL_SIZE))
        rows[PHOTOS_ROW] = photos[: len(classes)]
    except PhotosMissingError:
        pass
    # one labelled row per method (in table order), one column per class
    save_png(
        labelled_rows(rows, columns=max(len(classes), len(rows.get(PHOTOS_ROW, [])))),
        out / "classes.png",
    )


def recovery_section(dev: torch.device, quick: bool, out: Path | None) -> tuple[str, dict]:
    size = 32 if quick else 64
    seeds = [0] if quick else [0, 1, 2]
    net = grating_net()
    pattern = planted_pattern(size, size)
    extra = {"steps": 8} if quick else {}
    pa_extra = {"iter_n": 2, "opt_n": 3} if quick else {}

    def render_default(seed: int) -> Tensor:
        res = midnite.render(
            net, channel("relu", 0), size=size, seed=seed, device=dev, progress=False, **extra
        )
        return res.images[0]

    def classic_pa(seed: int) -> Tensor:
        return PixelActivation(
            (net, "relu"),
            SplitSelector(ChannelSplit(), [0]),
            init_size=size,
            seed=seed,
            device=dev,
            progress=False,
            **pa_extra,
        ).visualize()

    def noise(seed: int) -> Tensor:
        return torch.rand(3, size, size, generator=torch.Generator().manual_seed(seed))

    methods = {
        "midnite: render() default (feature recipe)": render_default,
        "classic: PixelActivation (cell-3 defaults, no transform)": classic_pa,
        "uniform noise (chance)": noise,
        "planted pattern (ceiling)": lambda seed: pattern,
    }
    rows, shown = [], []
    for name, fn in methods.items():
        t0 = time.perf_counter()
        images = [fn(s) for s in seeds]
        sync(dev)
        seconds = (time.perf_counter() - t0) / len(seeds)
        scores = [float(recovery_score(img, pattern)) for img in images]
        rows.append(
            {
                "method": name,
                "recovery (mean)": sum(scores) / len(scores),
                "min": min(scores),
                "max": max(scores),
                "recovered": f"{sum(s > RECOVERY_THRESHOLD for s in scores)}/{len(scores)}",
                "seconds per image": seconds,
            }
        )
        shown.append(images[0])
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        save_png(contact_sheet(shown, columns=len(shown)), out / "recovery.png")
    title = (
        f"Known answer: grating_net channel 0 at {size} px, {len(seeds)} seed(s); "
        f"recovered = score > {RECOVERY_THRESHOLD}"
    )
    text = table(title, list(rows[0]), [list(r.values()) for r in rows])
    return text, {"size": size, "seeds": seeds, "threshold": RECOVERY_THRESHOLD, "rows": rows}


SECTIONS = {"classes": classes_section, "recovery": recovery_section}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", default=None, help="also write the tables as JSON here")
    parser.add_argument("--out", default=None, help="save the images and contact sheets here")
    parser.add_argument("--quick", action="store_true", help="2 classes, few steps: a smoke test")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--recipes",
        default="",
        help="comma-separated midnite recipes to add as rows of the classes table (e.g. natural)",
    )
    parser.add_argument("--recipe-settings", type=json.loads, default={}, help="JSON overrides")
    parser.add_argument("--seed", type=int, default=0, help="the recipe rows' seed")
    parser.add_argument("--only-recipes", action="store_true", help="only the --recipes rows")
    parser.add_argument(
        "--class-set", choices=sorted(CLASS_SETS), default="ten", help="the classes to render"
    )
    args = parser.parse_args(argv)
    overrides = {**args.recipe_settings, "seed": args.seed}
    if isinstance(overrides.get("crops"), dict):
        overrides["crops"] = Crops(**overrides["crops"])
    if isinstance(overrides.get("colour"), dict):
        overrides["colour"] = MacoColour(**overrides["colour"])
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    names = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in names if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
    recipe_rows = tuple(r.strip() for r in args.recipes.split(",") if r.strip())
    missing = [r for r in recipe_rows if r not in recipe_names()]
    if missing:
        parser.error(f"unknown recipes {missing}; this midnite has {', '.join(recipe_names())}")
    out = Path(args.out) if args.out else None
    info = machine()
    print(f"midnite quality benchmark, {info}")
    chosen = CLASS_SETS[args.class_set]
    classes = list(chosen)[:2] if args.quick else list(chosen)
    print("classes: " + ", ".join(f"{c} {NAMES[c]}" for c in classes))
    payload = {"machine": info, "device": str(dev), "quick": args.quick, "sections": {}}
    began = time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        if name == "classes":
            text, data = classes_section(
                dev, args.quick, out, recipe_rows, overrides, args.only_recipes, args.class_set
            )
            data["recipe_settings"] = {**args.recipe_settings, "seed": args.seed}
        else:
            text, data = SECTIONS[name](dev, args.quick, out)
        sync(dev)
        data["seconds"] = time.perf_counter() - t0
        print(f"\n{text}\n({data['seconds']:.0f} s)", flush=True)
        payload["sections"][name] = data
    payload["seconds"] = time.perf_counter() - began
    print(f"\ntotal {payload['seconds']:.0f} s")
    if out is not None:
        print(f"images and contact sheets in {out}")
    write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
