"""Which concepts drive an output: importance on conv and token layers, classes per concept."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

from midnite.analysis import attribution as A
from midnite.analysis import concepts as C
from midnite.analysis import dictionary as dic
from midnite.errors import UsageError
from midnite.evaluation.known_answer import TinyViT, superposition_images, superposition_net
from midnite.evaluation.superposition import concept_pattern, planted_directions

K = 12


@pytest.fixture(scope="module", params=[0, 1])
def fitted(request):
    net = superposition_net()
    x, _ = superposition_images(300, seed=request.param)
    return net, C.fit(net, "mix", x, K, seed=request.param, size=32)


def test_classes_name_the_planted_class_of_each_concept(fitted):
    net, c = fitted
    _, match = dic.match(planted_directions(), c.directions)
    # an image of each single pattern: the head predicts its class
    tiles = torch.stack([concept_pattern(k).repeat(1, 4, 4) for k in range(K)])
    assert torch.equal(net(tiles).argmax(1), torch.arange(K))
    found = c.classes(tiles, k=3)
    assert len(found) == K
    for k in range(K):
        top = found[int(match[k])]
        assert top[0][0] == k, (k, top)
        shares = [s for _, s in top]
        assert shares == sorted(shares, reverse=True) and all(s > 0 for s in shares)


def test_classes_need_a_class_output():
    net = superposition_net()
    x, _ = superposition_images(40, seed=0)
    c = C.fit(net, "mix", x, K, seed=0, size=32)
    kept = list(net.named_children())[:-3]  # ends at mix: a (B, C, h, w) output
    c.model = torch.nn.Sequential(OrderedDict(kept))
    with pytest.raises(UsageError, match=r"\(batch, classes\)"):
        c.classes(x[:4])


def test_class_target_checks_its_argument():
    out = torch.arange(6.0).reshape(2, 3)
    assert torch.equal(A.class_target(2)(out), torch.tensor([2.0, 5.0]))
    with pytest.raises(UsageError, match=r"0\.\.2.*got 3"):
        A.class_target(3)(out)
    for bad in (-1, True, "cat"):
        with pytest.raises(UsageError, match="class index"):
            A.class_target(bad)


def _by_hand(vit, layer, d, x, target):
    """Gradient x activation on the patch tokens, written out: prefix tokens dropped."""
    seen = []
    h = dict(vit.named_modules())[layer].register_forward_hook(lambda m, a, o: seen.append(o))
    try:
        x = x.clone().requires_grad_()
        out = vit(x)
        grad = torch.autograd.grad(out[:, target].sum(), seen[0])[0]
    finally:
        h.remove()
    act, grad = seen[0][:, vit.num_prefix_tokens :], grad[:, vit.num_prefix_tokens :]
    codes = torch.relu(act.detach() @ d.T)  # (B, P, n): 'given' codes
    return ((grad @ d.T) * codes).sum(1).mean(0)


def test_importance_on_a_token_layer_reads_the_patch_grid():
    torch.manual_seed(0)
    vit = TinyViT(img_size=32, reg_tokens=2).eval()
    layer = "blocks.0"
    d = torch.nn.functional.normalize(torch.randn(5, 16), dim=1)
    c = C.from_directions(vit, layer, d, size=32)
    x = torch.rand(6, 3, 32, 32)
    imp = c.importance(3, x, batch=4)
    assert imp.shape == (5,)
    assert torch.allclose(imp, _by_hand(vit, layer, d, x, 3).float(), rtol=1e-4, atol=1e-6)
    assert imp.abs().sum() > 0
    assert not any(p.requires_grad is False for p in vit.parameters())  # model left as found


def test_concept_page_lists_its_classes_named_and_linked(tmp_path):
    from midnite.pages import concepts as pages

    folder = tmp_path / "mix"
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "0007.html").write_text("class 7")
    info = {
        "layer": "mix", "method": "nmf", "digest": "ab", "quality": {"r2": 0.9},
        "views": {"natural": "concept_ab"}, "units": [[(1, 0.7)], [(2, 0.5)]], "model": "m",
        "classes": [[(7, 0.25), (3, 0.125)], []],
        "class_names": [f"<b>class {k}</b>" for k in range(10)],
    }  # fmt: skip
    pages.build(folder, info, set(), {})
    page = (folder / "concept_0000.html").read_text()
    assert "classes it matters most for" in page
    assert '<a href="../output/0007.html">7 &lt;b&gt;class 7&lt;/b&gt;</a>' in page
    assert "3 &lt;b&gt;class 3&lt;/b&gt;" in page and "../output/0003.html" not in page
    assert page.index("class 7") < page.index("class 3")
    assert "classes it matters most for" not in (folder / "concept_0001.html").read_text()


def test_concept_pages_show_the_classes_written_for_their_dictionary(fitted, tmp_path):
    from midnite.jobs import concepts as J

    net, c = fitted
    _, match = dic.match(planted_directions(), c.directions)
    tiles = torch.stack([concept_pattern(k).repeat(1, 4, 4) for k in range(K)])
    data = J.write_classes(c, tiles, tmp_path)
    assert data is not None and data["outputs"] == K
    assert (tmp_path / "mix" / J.CLASSES).is_file()
    J.concepts_pages(c, tmp_path, {}, "sup")({}, True)
    i = int(match[4])
    page = (tmp_path / "mix" / f"concept_{i:04d}.html").read_text()
    assert "classes it matters most for" in page
    first = page.index("classes it matters most for")
    assert page[first:].split("<td>")[1].startswith("4<")  # class 4 first, no names (12 classes)
    # a dictionary of another digest shows none
    other = C.from_directions(net, "mix", c.directions.flip(0), size=32)
    J.concepts_pages(other, tmp_path, {}, "sup")({}, True)
    assert "classes it matters most for" not in (tmp_path / "mix" / "concept_0000.html").read_text()


def test_no_classes_for_a_model_without_a_class_output(tmp_path):
    from midnite.jobs import concepts as J

    net = superposition_net()
    kept = list(net.named_children())[:-3]
    x, _ = superposition_images(40, seed=0)
    c = C.fit(torch.nn.Sequential(OrderedDict(kept)), "mix", x, K, seed=0, size=32)
    assert J.write_classes(c, x[:4], tmp_path) is None
    assert not (tmp_path / "mix" / J.CLASSES).exists()


def test_concept_pages_show_only_the_recipes_that_were_rendered(tmp_path):
    from midnite.pages import concepts as pages

    folder = tmp_path / "mix"
    info = {
        "layer": "mix", "method": "nmf", "digest": "ab", "quality": {},
        "views": {"natural": "concept_ab", "feature": "concept_ab_feature"},
        "units": [[(1, 0.7)], [(2, 0.5)]], "model": "m",
    }  # fmt: skip
    pages.build(folder, info, {"concept_ab_feature_0001"}, {})
    first = (folder / "concept_0000.html").read_text()
    assert "natural: not rendered yet" in first and "feature" not in first.split("<h2>")[0]
    second = (folder / "concept_0001.html").read_text()
    assert "concept_ab_feature_0001.png" in second
    assert 'href="index.html"' not in first  # no catalogue layer page to link to
    (folder / "index.html").write_text("units")
    pages.build(folder, info, set(), {})
    assert '<a href="index.html">layer mix</a>' in (folder / "concept_0000.html").read_text()
    assert '<a href="index.html">units of mix</a>' in (folder / "concepts.html").read_text()
