"""The README's figure of concepts beside units (issue #19 item 6): a Lite0 layer's concepts,
learned from the project's photographs, next to the channels they weigh most.

Runs the command line as a user would: ``midnite concepts`` (fit, examples, natural renders)
then ``midnite catalogue`` for the channels the shown concepts weigh most (feature recipe),
into one folder; then draws, per concept: its render, its top dataset crops, and the render of
its heaviest channel with the channel's share of the direction.

    python benchmarks/concepts_figure.py [--layer _blocks.5] [--n 12] [--show 6] [--size 128]
                                         [--steps 128] [--out DIR] [--figure docs/concepts.jpg]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

MODEL = "efficientnet-lite0"


def _midnite(*args: str) -> None:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "midnite", *args, "--no-progress"], check=True)
    print(f"  midnite {args[0]}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)


def _image(path: Path) -> Image.Image:
    return Image.open(path).convert("RGB")


def _draw(out: Path, layer: str, show: list[int], dictionary, figure: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = out / layer
    renders = {int(p.stem.rsplit("_", 1)[1]): p for p in folder.glob("concept_*.png")
               if "_feature_" not in p.name and not p.stem.endswith("_alpha")}  # fmt: skip
    rows = ["concept (natural recipe)", "top photo crop", "2nd photo crop", "its heaviest channel"]
    fig, axes = plt.subplots(len(rows), len(show), figsize=(2.0 * len(show), 2.1 * len(rows)))
    for col, i in enumerate(show):
        d = dictionary[i]
        unit = int(d.abs().argmax())
        share = float(d[unit] ** 2)  # the channel's share of the unit direction's energy
        pics = [
            _image(renders[i]),
            _image(folder / "concept_examples" / f"{i:04d}_00_crop.png"),
            _image(folder / "concept_examples" / f"{i:04d}_01_crop.png"),
            _image(next(folder.glob(f"channel_{unit:04d}.png"))),
        ]
        titles = [f"concept {i}", "", "", f"channel {unit} ({share:.0%})"]
        for row, (pic, title) in enumerate(zip(pics, titles, strict=True)):
            ax = axes[row, col]
            ax.imshow(pic)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=9)
            if col == 0:
                ax.set_ylabel(rows[row], fontsize=8)
    fig.suptitle(f"{MODEL} {layer}: concepts learned from photos, beside single channels")
    fig.tight_layout()
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=80, pil_kwargs={"quality": 85})
    print(f"figure: {figure}")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layer", default="_blocks.5")
    p.add_argument("--n", type=int, default=12)
    p.add_argument("--show", type=int, default=6)
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--size", default="128")
    p.add_argument("--steps", default="128")
    p.add_argument("--out")
    p.add_argument("--figure", default=str(Path(__file__).parent.parent / "docs/concepts.jpg"))
    args = p.parse_args(argv)
    from midnite.evaluation.photos import write_crops

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or Path(tmp) / "out")
        photos = write_crops(Path(tmp) / "photos", args.images)
        sizes = ["--size", args.size, "--steps", args.steps, "--out", str(out)]
        _midnite("concepts", MODEL, "--layer", args.layer, "--images", str(photos),
                 "--n", str(args.n), "--recipe", "natural", "--examples", "2", *sizes)  # fmt: skip
        folder = out / args.layer
        dictionary = torch.load(folder / "concepts.pt", weights_only=True)["directions"]
        show = list(range(min(args.show, dictionary.shape[0])))
        units = sorted({int(dictionary[i].abs().argmax()) for i in show})
        _midnite("catalogue", MODEL, "--layers", args.layer, "--units",
                 ",".join(map(str, units)), *sizes)  # fmt: skip
        _draw(out, args.layer, show, dictionary, Path(args.figure))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
