"""Trust cards beyond the units' (issue #20): the min references of the catalogue's trust pass,
concepts scored against the layer's example pool with a card on their pages, and the checks on
what a trust file may put on a page."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image

from midnite.cli import main
from midnite.errors import UsageError
from midnite.evaluation.trust import TrustReport, assess
from midnite.evaluation.trust_stats import observe, path_layers
from midnite.images import load
from midnite.jobs import concepts as J
from midnite.jobs.trust import CONCEPT_TRUST, card, layer_trust, read_cards, unit_work
from midnite.models import load as load_model
from midnite.pages import concepts as concept_pages
from midnite.store.concepts import load_concepts
from test_trust_cli import JUDGE_SRC

from conftest import CLI_MODEL_SRC


def _photos(folder, n=90):
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(n):  # smooth random colour fields: every unit's examples differ
        low = torch.rand(3, 4, 4, generator=g)
        img = torch.nn.functional.interpolate(low[None], size=32, mode="bilinear")[0]
        Image.fromarray((img * 255).byte().permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    """One ``catalogue --trust --concepts 3`` run of the tiny model (shared: it takes seconds)."""
    tmp = tmp_path_factory.mktemp("cards")
    (tmp / "tiny.py").write_text(CLI_MODEL_SRC)
    (tmp / "judge.py").write_text(JUDGE_SRC)
    photos = _photos(tmp / "photos")
    argv = ["catalogue", f"{tmp / 'tiny.py'}:net", "--layers", "3", "--size", "32", "--steps",
            "4", "--no-progress", "--images", str(photos), "--top-k", "24", "--concepts", "3",
            "--trust", "--judge", f"{tmp / 'judge.py'}:judge",
            "--out", str(tmp / "out")]  # fmt: skip
    with torch.random.fork_rng():
        assert main(argv) == 0
    return tmp


def test_trust_renders_the_negative_view_and_uses_it_as_min_references(catalogue):
    layer = catalogue / "out" / "3"
    assert sorted(p.name for p in layer.glob("negative_[0-9][0-9][0-9][0-9].png")) == [
        f"negative_{u:04d}.png" for u in range(6)
    ]
    doc = json.loads((layer / "trust.json").read_text())
    scored = [e for e in doc.values() if e["score"] is not None]
    assert scored and all(e["min_references"] is True for e in scored)
    assert not any(k.startswith("negative") for k in doc)  # the min pictures are not scored


def test_the_min_references_are_the_negative_pictures(catalogue, tmp_path):
    """``layer_trust``'s score is ``assess`` with the negative picture observed as the picture
    is; without the negative PNG the entry says so and the score is the max-only one."""
    model = load_model(f"{catalogue / 'tiny.py'}:net")
    judge = load_model(f"{catalogue / 'judge.py'}:judge")
    out = tmp_path / "out"
    shutil.copytree(catalogue / "out", out)
    doc = json.loads((out / "3" / "trust.json").read_text())
    unit = next(int(k[-4:]) for k, e in doc.items() if e["score"] is not None)
    where = out / "3"
    pool = torch.stack([load(b, size=128, channels=3) for b in unit_work(out, "3").pool])
    path = path_layers(model, "3", pool[:1])
    common = dict(target="3", layers=path, judge=judge)
    natural = observe(model, pool, **common)
    seen = [
        observe(model, load(where / f"{v}_{unit:04d}.png", size=128)[None], **common)
        for v in ("channel", "negative")
    ]
    for negative in (seen[1], None):
        rep = TrustReport(target="t", recipe="feature", finite=True)
        assess(natural, seen[0], natural.target[:, unit], report=rep, pairs=100, refs=9, seed=0,
               negative=negative)  # fmt: skip
        if negative is None:
            (where / f"negative_{unit:04d}.png").unlink()
            doc = layer_trust(out, "3", model, judge)
        entry = doc[f"channel_{unit:04d}"]
        assert entry["score"] == rep.score and entry["ci"] == list(rep.ci or ())
        assert entry.get("min_references", False) is (negative is not None)


def test_concepts_get_a_trust_card_with_the_numbers_of_the_file(catalogue):
    layer = catalogue / "out" / "3"
    model = load_model(f"{catalogue / 'tiny.py'}:net")
    concepts = load_concepts(layer / "concepts.pt", model, "3")
    view = J.concept_views(concepts)["natural"]
    doc = json.loads((layer / CONCEPT_TRUST).read_text())
    assert sorted(doc) == [f"{view}_{i:04d}" for i in range(3)]
    for i in range(3):
        entry = doc[f"{view}_{i:04d}"]
        assert entry["recipe"] == "natural" and "min_references" not in entry
        page = (layer / f"concept_{i:04d}.html").read_text()
        assert 'class="trust-card' in page
        assert entry["verdict"].split(":")[0] in page
        if entry["score"] is not None:
            lo, hi = entry["ci"]
            assert f'<span class="score">{entry["score"]:.2f}</span>' in page
            assert f"[{lo:.2f}, {hi:.2f}]" in page
            assert f'<span class="natural">{entry["natural"]:.2f}</span>' in page
            assert f'<span class="path">{entry["path"]:.2f}</span>' in page
        assert '<span class="recipe">natural</span>' in page
        assert "from max pictures only" in page  # concepts have no min pictures


def test_the_concept_values_are_the_direction_objective(catalogue):
    """A concept's target on the pool is its direction objective's value (linear in the
    channel means), so ranking the pool by either gives the same order."""
    layer = catalogue / "out" / "3"
    model = load_model(f"{catalogue / 'tiny.py'}:net")
    concepts = load_concepts(layer / "concepts.pt", model, "3")
    pool = torch.stack(
        [load(b, size=128, channels=3) for b in unit_work(catalogue / "out", "3").pool]
    )
    natural = observe(model, pool, target="3")
    for i in range(concepts.n):
        direct = observe(model, pool, target="3", objective=concepts.objective(i)).values
        assert direct is not None
        mine = natural.target @ concepts.directions[i].float()
        assert torch.allclose(mine / concepts.directions[i].norm(), direct, atol=1e-5)


def test_a_concept_card_is_escaped(tmp_path):
    info = {"layer": "3<b>", "method": "nmf", "digest": "d", "quality": {}, "model": "m",
            "views": {"natural": "concept_d"}, "units": [[(0, 1.0)]],
            "trust": {0: card({"score": 0.75, "ci": [0.6, 0.9], "natural": 0.8, "path": 0.7,
                               "flagged": True, "verdict": "<script>alert(1)</script>",
                               "recipe": 'x"&<y>'})}}  # fmt: skip
    concept_pages.build(tmp_path, info, set(), {})
    page = (tmp_path / "concept_0000.html").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "x&quot;&amp;&lt;y&gt;" in page
    assert 'class="trust-card flagged"' in page and "[0.60, 0.90]" in page


@pytest.mark.parametrize(
    "entry, expected",
    [
        ({"verdict": "v", "score": 0.5, "ci": [0.4, 0.6], "natural": 0.9, "path": 0.7,
          "flagged": True, "recipe": "feature", "min_references": True},
         {"score": 0.5, "ci": [0.4, 0.6], "natural": 0.9, "path": 0.7, "flagged": True,
          "verdict": "v", "recipe": "feature", "min_references": True}),
        ({"verdict": "v", "score": 1.5, "ci": [0.4], "natural": "0.9", "path": True,
          "flagged": "yes", "recipe": 3},
         {"score": None, "ci": None, "natural": None, "path": None, "flagged": False,
          "verdict": "v", "recipe": "unknown", "min_references": False}),
        ({"score": 0.5}, None),  # no verdict: no card
        (["verdict"], None),
    ],
)  # fmt: skip
def test_card_keeps_only_what_a_page_may_show(entry, expected):
    assert card(entry) == expected


def test_read_cards_of_a_damaged_or_missing_file_is_empty(tmp_path):
    assert read_cards(tmp_path / "none.json") == {}
    (tmp_path / "bad.json").write_text("{not json")
    assert read_cards(tmp_path / "bad.json") == {}
    (tmp_path / "ok.json").write_text(json.dumps({"a": {"verdict": "v"}, "b": 3}))
    assert list(read_cards(tmp_path / "ok.json")) == ["a"]


def test_too_few_examples_is_one_line_naming_the_minimum(catalogue):
    with pytest.raises(UsageError, match=r"trust needs at least 318 for 10000 pairs"):
        unit_work(catalogue / "out", "3", pairs=10_000)
