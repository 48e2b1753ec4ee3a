"""Concepts on Ray: the activation pass sharded over the workers gives the same dictionary, and
the same concept renders, as one in-process pass (``midnite concepts`` and ``midnite catalogue
--concepts``).

Marked ``ray_cluster`` (run with ``pytest -m ray_cluster`` in a loopback-only network
namespace, like ``test_catalogue_ray.py``); it starts and stops its own local Ray instance.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from midnite.cli import main
from midnite.evaluation.superposition import superposition_images
from midnite.images import png_bytes
from midnite.store.concepts import load_concepts

SRC = (
    "from midnite.evaluation.superposition import superposition_net\n"
    "def build():\n    return superposition_net()\n"
)


def _pngs(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


@pytest.mark.ray_cluster
def test_concepts_on_ray_are_the_same_dictionary_and_renders(tmp_path, one_thread):
    pytest.importorskip("ray")
    from midnite.jobs.ray import CHUNK

    (tmp_path / "net.py").write_text(SRC)
    name = f"{tmp_path / 'net.py'}:build"
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    x, _ = superposition_images(CHUNK * 2 + 20, seed=0)  # three chunks for two workers
    for i, img in enumerate(x):
        (photos / ("sub" if i % 3 else "") / f"{i:03d}.png").write_bytes(png_bytes(img))
    common = ["concepts", name, "--layer", "mix", "--images", photos, "--n", 8, "--size", 32,
              "--steps", 2, "--batch", 8, "--no-progress", "--examples", 2]  # fmt: skip
    a, b = tmp_path / "a", tmp_path / "b"
    assert main([str(v) for v in [*common, "--out", a]]) == 0
    assert main([str(v) for v in [*common, "--out", b, "--ray", "--workers", 2]]) == 0
    model = __import__("midnite").models.load(name)
    da, db = (load_concepts(f / "mix" / "concepts.pt", model, "mix") for f in (a, b))
    assert torch.equal(da.directions, db.directions)
    assert da.quality == db.quality and da.quality["images"] == len(x)
    assert _pngs(a) == _pngs(b)  # concept renders (one view per recipe) and example crops
    # the catalogue's concepts on Ray: the same dictionary, rendered in the same run as units
    c = tmp_path / "c"
    argv = ["catalogue", name, "--layers", "mix", "--units", "0-1", "--images", photos,
            "--concepts", 8, "--size", 32, "--steps", 2, "--batch", 8, "--top-k", 2,
            "--no-progress", "--out", c, "--ray", "--workers", 2]  # fmt: skip
    assert main([str(v) for v in argv]) == 0
    dc = load_concepts(c / "mix" / "concepts.pt", model, "mix")
    assert torch.equal(da.directions, dc.directions)
    natural = {p: v for p, v in _pngs(a).items() if "feature" not in p and "example" not in p}
    assert natural and all(_pngs(c)[p] == v for p, v in natural.items())
