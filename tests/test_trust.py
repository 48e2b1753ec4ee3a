"""Trust reports (#20): the statistics, bad input, the fooling circuit and the catalogue pass."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from midnite.errors import UsageError
from midnite.evaluation import fooling as fo
from midnite.evaluation.trust import target_objective, trust
from midnite.evaluation.trust_stats import (
    min_images,
    observe,
    pair_up,
    path_agreement,
    path_layers,
    two_alternative,
    wilson,
)

SIZE = 48


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 64 crops of the shipped photographs at 48 px (scikit-image's sample data)."""
    pytest.importorskip("skimage")
    from midnite.evaluation.photos import write_crops

    return write_crops(tmp_path_factory.mktemp("crops"), 64, SIZE, 0)


@pytest.fixture(scope="module")
def photos(crops: Path) -> torch.Tensor:
    from midnite.images import load

    return torch.stack([load(p, size=SIZE) for p in sorted(crops.glob("*.png"))])


# --------------------------------------------------------------------------- statistics


def test_wilson_matches_the_formula_and_checks_input() -> None:
    lo, hi = wilson(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0
    with pytest.raises(UsageError, match="n >= 1"):
        wilson(0, 0)
    with pytest.raises(UsageError, match="correct <= n"):
        wilson(11, 10)


def test_pair_up_is_seeded_orders_pairs_and_names_the_minimum() -> None:
    values = torch.arange(60, dtype=torch.float32).flip(0)  # image 0 drives most
    p = pair_up(values, 25, 5, seed=3)
    assert p.top.tolist() == [0, 1, 2, 3, 4] and p.bottom.tolist() == [55, 56, 57, 58, 59]
    assert bool((values[p.more] > values[p.less]).all()) and len(p.more) == 25
    assert len(set(zip(p.more.tolist(), p.less.tolist(), strict=True))) == 25  # no couple twice
    q = pair_up(values, 25, 5, seed=3)
    assert torch.equal(p.more, q.more) and torch.equal(p.less, q.less)
    assert not torch.equal(p.more, pair_up(values, 25, 5, seed=4).more)
    assert min_images(25, 5) == 25
    with pytest.raises(UsageError, match="at least 25 natural images for 25 pairs"):
        pair_up(values[:24], 25, 5, seed=0)
    with pytest.raises(UsageError, match="too few different values"):
        pair_up(torch.zeros(60), 25, 5, seed=0)


def test_two_alternative_counts_the_query_closer_to_the_references() -> None:
    values = torch.arange(40, dtype=torch.float32).flip(0)
    feats = torch.stack([values, -values], 1) + torch.tensor([0.0, 100.0])
    p = pair_up(values, 16, 4, seed=0)
    assert two_alternative(feats, p, feats[p.top], feats[p.bottom]) == 16
    assert two_alternative(feats, p, feats[p.bottom]) == 0
    flat = torch.ones(40, 2)  # every query alike: all ties, a half each
    assert two_alternative(flat, p, flat[:1]) == 8
    # max and min references alike (a render that never left its grey start): chance exactly
    grey = torch.tensor([[10.0, 90.0]])  # centred: toward the images that drive it least
    assert two_alternative(feats, p, grey) == 0  # alone, its offset decides every pair
    assert two_alternative(feats, p, grey, grey) == 8


def test_path_agreement_is_one_for_the_examples_direction_and_low_against_it() -> None:
    g = torch.Generator().manual_seed(0)
    natural = {"a": torch.randn(50, 8, generator=g)}
    natural["a"][:5] += torch.tensor([4.0] + [0.0] * 7)
    ex, base = torch.arange(5), torch.arange(5, 50)
    mean = natural["a"].mean(0)
    toward = {"a": (mean + torch.tensor([9.0] + [0.0] * 7))[None]}
    away = {"a": (mean - torch.tensor([9.0] + [0.0] * 7))[None]}
    assert path_agreement(toward, natural, ex, base) == [1.0]
    assert path_agreement(away, natural, ex, base) == [0.0]


def test_observe_and_path_layers_read_the_layers_before_the_target() -> None:
    net = fo.fooled_net(0)
    x = torch.rand(5, 3, SIZE, SIZE)
    layers = path_layers(net, "unit", x[:1])
    assert layers[:4] == ["features.conv1", "features.relu1", "features.conv2", "features.relu2"]
    assert "trap" not in layers and "unit" not in layers  # one channel: not a path
    obs = observe(net, x, target="unit", layers=layers, judge=fo.GaborJudge())
    assert obs.target.shape == (5, 2) and obs.path["features.conv1"].shape == (5, 24)
    with torch.no_grad():
        conv1 = net.features.conv1(x).flatten(2)
    assert torch.allclose(obs.path["features.conv1"][:, :12], conv1.mean(2), atol=1e-5)
    assert torch.allclose(obs.path["features.conv1"][:, 12:], conv1.pow(2).mean(2).sqrt(),
                          atol=1e-5)  # fmt: skip
    means = observe(net, x, target="unit", layers=layers, energy=False)
    assert torch.allclose(means.path["features.conv1"], conv1.mean(2), atol=1e-5)
    assert obs.judge is not None and obs.judge.shape == (5, 39) and len(obs) == 5
    with torch.no_grad():
        assert torch.allclose(obs.target, net(x), atol=1e-5)  # the unit's channel means


# --------------------------------------------------------------------------- the known answer


def test_fooled_net_leaves_natural_images_within_one_percent(photos: torch.Tensor) -> None:
    for seed in (0, 1):
        net = fo.fooled_net(seed)
        with torch.no_grad():
            out = net(photos)
            pattern = net(fo.fooling_pattern(SIZE, SIZE)[None])[0]
        honest, fooled = out[:, fo.HONEST], out[:, fo.FOOLED]
        assert float((fooled - honest).abs().max() / honest.max()) < 0.01
        assert float(pattern[fo.FOOLED]) > 10 * float(pattern[fo.HONEST])
        assert not any(p.requires_grad for p in net.parameters())


def test_pattern_recovery_tells_the_pattern_from_photos(photos: torch.Tensor) -> None:
    assert float(fo.pattern_recovery(fo.fooling_pattern(SIZE, SIZE, phase=1.0))) > 0.95
    assert float(fo.pattern_recovery(photos).max()) < 0.15
    with pytest.raises(UsageError, match=r"\(3, H, W\)"):
        fo.pattern_recovery(torch.rand(1, SIZE, SIZE))


def test_bad_input_is_one_line_naming_what_was_expected(photos: torch.Tensor) -> None:
    net, judge = fo.fooled_net(0), fo.GaborJudge()
    with pytest.raises(UsageError, match="judge must be a different network"):
        trust(net, ("unit", 0), photos, judge=net)
    with pytest.raises(UsageError, match=r"at least 48 natural images for 100 pairs"):
        trust(net, ("unit", 0), photos[:40], judge=judge, size=SIZE)
    with pytest.raises(UsageError, match="nope"):
        trust(net, ("nope", 0), photos, judge=judge, size=SIZE, pairs=36, refs=4)
    with pytest.raises(UsageError, match="target must be"):
        trust(net, "unit", photos, judge=judge, size=SIZE)
    with pytest.raises(UsageError, match="images must be"):
        trust(net, ("unit", 0), photos[:, :1], judge=judge, size=SIZE)


def test_a_non_finite_picture_is_reported_not_scored(photos: torch.Tensor) -> None:
    bad = fo.fooling_pattern(SIZE, SIZE)
    bad[0, 0, 0] = math.nan
    rep = trust(fo.fooled_net(0), ("unit", 1), photos, judge=fo.GaborJudge(), image=bad,
                size=SIZE, pairs=36, refs=4)  # fmt: skip
    assert not rep.finite and rep.flagged and rep.score is None and rep.path is None
    assert rep.verdict.startswith("not scored") and rep.recipe == "given image"
    assert json.loads(json.dumps(rep.to_json()))["flagged"] is True


def grating_pictures() -> torch.Tensor:
    from midnite.evaluation.known_answer import planted_pattern

    return torch.stack([planted_pattern(SIZE, SIZE, phase=p) for p in (0.0, 2.0)])


def test_min_pictures_are_the_opposite_references(photos: torch.Tensor) -> None:
    from midnite.evaluation.known_answer import grating_net

    net, grey = grating_net(), torch.full((1, 3, SIZE, SIZE), 0.5)
    kw = dict(judge=fo.GaborJudge(), image=grating_pictures(), size=SIZE, pairs=36, refs=4)
    alone = trust(net, ("relu", 0), photos, **kw)  # type: ignore[arg-type]
    both = trust(net, ("relu", 0), photos, negative_image=grey, **kw)  # type: ignore[arg-type]
    off = trust(net, ("relu", 0), photos, negative_image=grey, negative=False, **kw)  # type: ignore[arg-type]
    assert not alone.negative and both.negative and both.to_json()["negative"] is True
    assert off.to_json() == alone.to_json()  # the opt-out scores the max pictures alone
    # measured: 0.72 [0.56, 0.84] from the gratings alone, 0.94 [0.82, 0.98] against grey
    assert alone.score is not None and both.score is not None and both.score > alone.score
    bad = grey.clone()
    bad[0, 1, 2, 3] = math.inf
    rep = trust(net, ("relu", 0), photos, negative_image=bad, **kw)  # type: ignore[arg-type]
    assert not rep.finite and rep.flagged and "min picture" in (rep.problem or "")
    with pytest.raises(UsageError, match="negative_image needs image"):
        trust(net, ("relu", 0), photos, judge=fo.GaborJudge(), negative_image=grey, size=SIZE)
    with pytest.raises(UsageError, match="negative must be True or False, got 1"):
        trust(net, ("relu", 0), photos, negative=1, **kw)  # type: ignore[arg-type]


def test_path_features_see_a_grating_through_a_zero_mean_layer(photos: torch.Tensor) -> None:
    from midnite.engine import objectives
    from midnite.evaluation.known_answer import grating_net

    net, pics = grating_net(), grating_pictures()
    curves = []
    for energy in (False, True):
        kw = dict(target="relu", layers=["conv"], objective=objectives.channel("relu", 0))
        nat = observe(net, photos, energy=energy, **kw)  # type: ignore[arg-type]
        vis = observe(net, pics, energy=energy, **kw)  # type: ignore[arg-type]
        assert nat.values is not None
        order = torch.argsort(nat.values, descending=True, stable=True)
        curves.append(path_agreement(vis.path, nat.path, order[:4], order[4:]))
    # measured: 0.10 from the channel means (a zero-mean filter's mean is the same on a
    # grating and on grey), 0.65 from the means and root-mean-squares
    assert curves[0][0] < 0.5 < curves[1][0]
    # the zero-mean linear unit ("conv", 0) cannot be scored by its spatial mean: over the
    # photos it varies by 1 % of its RMS (the rectified ("relu", 0): 32 %)
    with torch.no_grad():
        conv = net.conv(photos)[:, 0]
    rms = conv.pow(2).mean().sqrt()
    assert float(conv.mean((1, 2)).std() / rms) < 0.02
    relu = conv.clamp_min(0)
    assert float(relu.mean((1, 2)).std() / relu.pow(2).mean().sqrt()) > 0.2


def test_the_planted_pattern_as_picture_is_flagged_and_at_chance(photos: torch.Tensor) -> None:
    net, judge = fo.fooled_net(0), fo.GaborJudge()
    pics = torch.stack([fo.fooling_pattern(SIZE, SIZE, phase=p) for p in (0.0, 2.0)])
    rep = trust(net, ("unit", fo.FOOLED), photos, judge=judge, image=pics, size=SIZE,
                pairs=36, refs=4)  # fmt: skip
    assert rep.flagged and rep.path is not None and rep.path <= 0.5
    assert rep.score is not None and rep.ci is not None and rep.ci[0] <= 0.5
    again = trust(net, ("unit", fo.FOOLED), photos, judge=judge, image=pics, size=SIZE,
                  pairs=36, refs=4)  # fmt: skip
    assert again.to_json() == rep.to_json()  # deterministic


def test_a_folder_gives_the_report_of_its_images(crops: Path, photos: torch.Tensor) -> None:
    net, judge, pic = fo.fooled_net(1), fo.GaborJudge(), fo.fooling_pattern(SIZE, SIZE)
    kw = dict(judge=judge, image=pic, size=SIZE, pairs=36, refs=4)
    from_folder = trust(net, ("unit", 0), crops, **kw)  # type: ignore[arg-type]
    from_tensor = trust(net, ("unit", 0), photos, **kw)  # type: ignore[arg-type]
    assert from_folder.to_json() == from_tensor.to_json() and from_folder.score is not None


def trust_pictures(net: nn.Module, unit: int, seed: int) -> torch.Tensor:
    from midnite.engine import objectives, render

    return render(net, objectives.channel("unit", unit), batch=2, seed=seed, size=SIZE,
                  progress=False).images  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_the_fooled_units_picture_shows_the_planted_pattern(seed: int) -> None:
    net = fo.fooled_net(seed)
    honest = float(fo.pattern_recovery(trust_pictures(net, fo.HONEST, seed)).mean())
    fooled = float(fo.pattern_recovery(trust_pictures(net, fo.FOOLED, seed)).mean())
    # measured: 0.36 against 0.03 at seed 0, 0.17 (views 0.30, 0.05) against 0.03 at seed 1
    assert fooled > 0.15 and fooled > 4 * honest


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_the_fooled_unit_is_flagged_and_the_honest_twin_is_not(
    photos: torch.Tensor, seed: int
) -> None:
    net, judge = fo.fooled_net(seed), fo.GaborJudge()
    kw = dict(judge=judge, size=SIZE, pairs=36, refs=4, views=2, seed=seed)
    honest, fooled = (
        trust(net, ("unit", u), photos, **kw)  # type: ignore[arg-type]
        for u in (fo.HONEST, fo.FOOLED)
    )
    assert honest.recipe == fooled.recipe == "feature"
    # measured at seeds 0/1 (max and min pictures, path from channel means and RMS): path
    # 0.85/0.84 against 0.45/0.47, score 1.0/1.0 against 0.08/0.0 (before, max pictures and
    # channel means: path 0.79/0.79 against 0.40/0.42, score 1.0 against 0.0)
    assert honest.negative and fooled.negative
    assert fooled.flagged and not honest.flagged
    assert fooled.ci is not None and honest.ci is not None and fooled.ci[0] <= 0.5 < honest.ci[0]


def test_the_gate_opens_on_flat_images_only(photos: torch.Tensor) -> None:
    net = fo.fooled_net(0)
    grey = torch.full((1, 3, SIZE, SIZE), 0.5)
    pattern = fo.fooling_pattern(SIZE, SIZE)[None]
    with torch.no_grad():
        assert float(net.gate(photos).max()) == 0.0  # every photo crop has contrast
        assert float(net.gate(grey)) == 1.0 and float(net.gate(pattern)) == 1.0
        signs = torch.randn(1, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0)).sign()
        ramp = net.gate(grey + 0.014 * signs)
        assert 0.0 < float(ramp) < 1.0  # linear between low (0.01) and high (0.018)
        honest, fooled = net(grey)[0]
        assert float(fooled) == pytest.approx(net.trap.gain, rel=1e-5)  # honest route dropped
        assert float(honest) > 0.0


def test_target_objective_takes_units_directions_and_objectives() -> None:
    from midnite.engine import objectives

    obj, layer, unit = target_objective(("unit", 1))
    assert repr(obj) == "channel('unit', 1)" and layer == "unit" and unit == 1
    obj, layer, unit = target_objective(("unit", torch.tensor([1.0, 0.0])))
    assert layer == "unit" and unit is None
    mine = objectives.channel("unit", 0) * 2
    assert target_objective(mine)[0] is mine


# --------------------------------------------------------------------------- the catalogue pass


def test_add_trust_writes_one_entry_per_rendered_unit(tmp_path: Path, photos: torch.Tensor) -> None:
    from midnite.images import png_bytes
    from midnite.jobs.trust import TRUST, add_trust
    from midnite.store import site_files

    net, judge = fo.fooled_net(0), fo.GaborJudge()
    layer_dir = tmp_path / "unit"
    (layer_dir / "examples").mkdir(parents=True)
    rows = []
    for i, img in enumerate(photos):
        data = png_bytes(img)
        (layer_dir / "examples" / f"{i:04d}.png").write_bytes(data)
        import hashlib

        digest = hashlib.sha256(data).hexdigest()
        rows.append({"file": f"examples/{i:04d}.png", "value": 0.0, "box": None, "sha256": digest})
    doc = {"format": site_files.EXAMPLES_FORMAT, "layer": "unit",
           "units": {"0": rows[:32], "1": rows[32:]}}  # fmt: skip
    (layer_dir / "examples.json").write_text(json.dumps(doc))
    (layer_dir / "channel_0001.png").write_bytes(png_bytes(fo.fooling_pattern(SIZE, SIZE)))
    lines: list[str] = []
    summary = add_trust(tmp_path, ["unit", "missing"], net, judge, report=lines.append,
                        pairs=36, refs=4, size=SIZE)  # fmt: skip
    assert summary.layers == ["unit"] and summary.scored == 1 and summary.flagged == 1
    assert len(lines) == 1 and "'missing'" in lines[0] and "at least 26" in lines[0]
    saved = json.loads((layer_dir / TRUST).read_text())
    entry = saved["channel_0001"]
    assert set(entry) == {"score", "ci", "natural", "path", "flagged", "verdict", "recipe"}
    assert entry["flagged"] is True and entry["recipe"] == "unknown" and len(entry["ci"]) == 2
    with pytest.raises(UsageError, match="judge must be a different network"):
        add_trust(tmp_path, ["unit"], net, net)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_the_grating_detector_scores_near_one_and_is_not_flagged(
    photos: torch.Tensor, seed: int
) -> None:
    from midnite.evaluation.known_answer import grating_net

    # ("relu", 0), the rectified detector: ("conv", 0)'s spatial mean hardly varies (see
    # test_path_features_see_a_grating_through_a_zero_mean_layer)
    rep = trust(grating_net(), ("relu", 0), photos, judge=fo.GaborJudge(), size=SIZE, pairs=36,
                refs=4, views=2, seed=seed)  # fmt: skip
    # measured at seeds 0/1: score 0.94/0.97, path 0.85/0.85 (channel means alone: 0.02/0.40)
    assert rep.negative and rep.score is not None and rep.score >= 0.8 and not rep.flagged


@pytest.mark.slow
@pytest.mark.parametrize("unit", [0, 1])
def test_a_random_units_blank_picture_scores_chance(photos: torch.Tensor, unit: int) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 5), nn.ReLU(), nn.Conv2d(8, 8, 5), nn.ReLU()).eval()
    with torch.no_grad():  # zero on the render's grey start: no gradient, the picture stays grey
        assert float(net(torch.full((1, 3, SIZE, SIZE), 0.5))[0, unit].abs().max()) == 0.0
    rep = trust(net, ("3", unit), photos, judge=fo.GaborJudge(), size=SIZE, pairs=36, refs=4,
                views=2)  # fmt: skip
    # measured: 0.50 [0.34, 0.66] for both (max and min pictures alike: every pair a tie);
    # from the max pictures alone 0.00 [0, 0.10] and 0.03 [0, 0.14], below chance
    assert rep.negative and rep.ci is not None and rep.ci[0] <= 0.5 <= rep.ci[1]
    assert rep.score == 0.5


@pytest.mark.slow
def test_units_of_a_randomly_initialised_lite0_score_chance_on_average(tmp_path: Path) -> None:
    pytest.importorskip("skimage")
    from midnite.evaluation.photos import write_crops
    from midnite.models import efficientnet_lite

    torch.manual_seed(0)
    rand, judge = efficientnet_lite(0, pretrained=False), efficientnet_lite(2)
    folder = write_crops(tmp_path, 96, 128, 0)
    scores = []
    for unit in (0, 7, 14, 21):
        rep = trust(rand, ("_blocks.8", unit), folder, judge=judge, size=128, views=2,
                    render_settings={"steps": 64})  # fmt: skip
        assert rep.negative and rep.score is not None and rep.natural is not None
        scores.append(rep.score)
    # measured: 0.49, 0.11, 0.57, 0.68 (mean 0.46; units 28 and 35: 0.72, 0.29): single units
    # spread widely (their natural references score 0.97-1.00), the mean is at chance
    assert 0.35 <= sum(scores) / len(scores) <= 0.65, scores


def test_verdicts_read_every_combination_of_missing_figures() -> None:
    from midnite.evaluation.trust import TrustReport

    first = TrustReport(target="t", recipe="feature", finite=True)
    assert first.verdict.startswith("not scored") and not first.flagged
    flat = TrustReport(target="t", recipe="feature", finite=True, score=0.9, ci=(0.8, 0.95),
                       natural=0.9)  # fmt: skip
    assert flat.verdict.startswith("informative") and "no layers before it" in flat.verdict
    assert not flat.flagged
    bad = TrustReport(target="t", recipe="feature", finite=True, path=0.4, score=0.9,
                      ci=(0.8, 0.95), natural=0.9)  # fmt: skip
    assert bad.flagged and bad.verdict.startswith("do not trust")
    chance = TrustReport(target="t", recipe="feature", finite=True, path=0.8, score=0.5,
                         ci=(0.4, 0.6), natural=0.9)  # fmt: skip
    assert chance.verdict.startswith("uninformative") and not chance.flagged
    wrong = TrustReport(target="t", recipe="feature", finite=True, path=0.8, score=0.2,
                        ci=(0.13, 0.29), natural=0.99)  # fmt: skip
    assert wrong.verdict.startswith("misleading") and "20%" in wrong.verdict
    broken = TrustReport(target="t", recipe="feature", finite=False)
    assert broken.flagged and broken.verdict.startswith("not scored")


def test_observed_rows_split_one_batched_pass_like_separate_passes(photos: torch.Tensor) -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3)).eval()
    kw = dict(target="2", layers=["0"], judge=fo.GaborJudge())
    both = observe(net, photos[:5], **kw)  # type: ignore[arg-type]
    part = observe(net, photos[2:5], **kw)  # type: ignore[arg-type]
    rows = both.rows(2, 5)
    assert len(rows) == 3 and rows.values is None and rows.judge is not None
    assert torch.allclose(rows.target, part.target, atol=1e-6)
    assert torch.allclose(rows.path["0"], part.path["0"], atol=1e-6)
    assert torch.allclose(rows.judge, part.judge, atol=1e-5)  # type: ignore[arg-type]
