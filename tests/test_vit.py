"""Vision transformers: token layers read as (D, h, w) maps (midnite.engine.tokens).

The ViTs here are written in plain torch in timm's layout (``patch_embed.grid_size``,
``num_prefix_tokens``, ``blocks.N.mlp.act``, ...) with random weights, independently of
``midnite.known_answer.TinyViT``: the engine must recognise the layout, not one class.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import midnite
from midnite import objectives as obj
from midnite.engine import tokens
from midnite.engine.hooks import ActivationCapture
from midnite.engine.tokens import TokenGrid, TokenReader, set_token_grid, token_grid, tokens_to_map

from conftest import hook_count

# renders on a shared 2-core CPU: one thread (see conftest.one_thread)
pytestmark = pytest.mark.usefixtures("one_thread")


class PatchEmbed(nn.Module):
    def __init__(self, img_size, patch, dim, nhwc=False):
        super().__init__()
        self.img_size, self.patch_size = img_size, (patch, patch)
        self.grid_size = (img_size[0] // patch, img_size[1] // patch)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)
        self.nhwc = nhwc  # timm's dynamic_img_size: flatten after the position embedding

    def forward(self, x):
        x = self.proj(x)
        return x.permute(0, 2, 3, 1) if self.nhwc else x.flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, 4 * dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """timm's VisionTransformer in miniature: class and register tokens, dynamic sizes."""

    def __init__(
        self,
        img_size=(32, 48),
        patch=8,
        dim=32,
        depth=2,
        class_token=True,
        reg_tokens=0,
        dynamic_img_size=False,
        seed=0,
    ):
        super().__init__()
        torch.manual_seed(seed)
        self.dynamic_img_size = dynamic_img_size
        self.num_prefix_tokens = int(class_token) + reg_tokens
        self.patch_embed = PatchEmbed(img_size, patch, dim, nhwc=dynamic_img_size)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02) if class_token else None
        self.reg_token = (
            nn.Parameter(torch.randn(1, reg_tokens, dim) * 0.02) if reg_tokens else None
        )
        self.pos_embed = nn.Parameter(torch.randn(1, self.patch_embed.num_patches, dim) * 0.02)
        self.blocks = nn.Sequential(*(Block(dim, 2) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 5)

    def forward(self, x):
        x = self.patch_embed(x)
        if self.dynamic_img_size:  # (B, h, w, D): resample the position embedding to (h, w)
            _, h, w, d = x.shape
            gh, gw = self.patch_embed.grid_size
            pos = self.pos_embed.transpose(1, 2).reshape(1, d, gh, gw)
            pos = F.interpolate(pos, size=(h, w), mode="bilinear", align_corners=False)
            x = x.flatten(1, 2) + pos.flatten(2).transpose(1, 2)
        else:
            x = x + self.pos_embed  # timm's no_embed_class: prefix tokens get no position
        prefix = [
            t.expand(x.shape[0], -1, -1) for t in (self.cls_token, self.reg_token) if t is not None
        ]
        x = self.norm(self.blocks(torch.cat([*prefix, x], dim=1)))
        return self.head(x[:, 0] if self.cls_token is not None else x.mean(1))


VARIANTS = {
    "class token": {},
    "class + 4 registers": {"reg_tokens": 4},
    "no prefix": {"class_token": False},
    "non-square 40x24": {"img_size": (40, 24)},
}


def _grid(kw, patch=8):
    h, w = kw.get("img_size", (32, 48))
    return h // patch, w // patch


@pytest.mark.parametrize("kw", VARIANTS.values(), ids=VARIANTS.keys())
def test_layers_lists_token_layers_as_maps(kw):
    vit = ViT(**kw)
    h, w = _grid(kw)
    assert token_grid(vit) == TokenGrid((h, w), prefix=vit.num_prefix_tokens, patch=8)
    table = {info.name: info.shape for info in midnite.layers(vit)}  # native size by default
    for b in ("blocks.0", "blocks.1"):
        assert table[b] == (32, h, w)
        assert table[f"{b}.mlp.act"] == (128, h, w)
        assert table[f"{b}.attn.qkv"] == (96, h, w)
        assert table[f"{b}.norm1"] == (32, h, w)
    assert table["norm"] == (32, h, w)
    # not (B, prefix + h*w, D): as they are
    assert table["patch_embed.proj"] == (32, h, w)  # a conv's own map
    if vit.num_prefix_tokens:
        assert table["patch_embed"] == (h * w, 32)  # tokens before the prefix joins
    assert table[""] == (5,) and table["head"] == (5,)
    assert midnite.layers(vit, (8 * h, 8 * w)) == midnite.layers(vit)


@pytest.mark.parametrize("kw", VARIANTS.values(), ids=VARIANTS.keys())
def test_capture_gives_the_patch_tokens_in_grid_order(kw):
    vit = ViT(**kw).eval()
    h, w = _grid(kw)
    x = torch.rand(2, 3, 8 * h, 8 * w, generator=torch.Generator().manual_seed(0))
    raw = {}
    handle = vit.blocks[1].mlp.act.register_forward_hook(lambda m, a, out: raw.setdefault("t", out))
    with torch.no_grad():
        vit(x)
    handle.remove()
    with torch.no_grad(), ActivationCapture(vit, ["blocks.1.mlp.act", ""]) as cap:
        acts = cap(x)
    act = acts["blocks.1.mlp.act"]
    assert act.shape == (2, 128, h, w)
    p = vit.num_prefix_tokens
    for i, j in [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (h // 2, w // 3)]:
        torch.testing.assert_close(act[:, :, i, j], raw["t"][:, p + i * w + j])
    assert acts[""].shape == (2, 5)
    assert hook_count(vit) == 0


def _start_image(h, w, seed=0):
    return (
        0.5 + 0.1 * torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(seed))
    ).clamp(0, 1)


def _patch_shares(vit, layer, unit, i, j, size, patch):
    """The share of the input gradient's mass of neuron (unit, i, j) of ``layer`` per patch."""
    h, w = size[0] // patch, size[1] // patch
    x = _start_image(*size).requires_grad_(True)
    objective = obj.neuron(layer, unit, y=i, x=j)
    with ActivationCapture(vit, objective.layers) as cap:
        objective(cap(x)).sum().backward()
    mass = x.grad.abs().sum(1)[0].unflatten(0, (h, patch)).unflatten(2, (w, patch)).sum((1, 3))
    return mass / mass.sum()  # (h, w)


@pytest.mark.parametrize("kw", VARIANTS.values(), ids=VARIANTS.keys())
@pytest.mark.parametrize("layer", ["blocks.0.mlp.act", "blocks.0"])
def test_neuron_at_a_token_draws_its_gradient_from_that_patch(kw, layer):
    """A neuron of the first block at token (i, j) reads patch (i, j) most: these random ViTs
    put about half of the input gradient's mass there (0.49-0.58), so with 4 px patches (96 of
    them on 32x48 px) that is over 20 times a uniform share."""
    vit = ViT(patch=4, **kw)
    size = kw.get("img_size", (32, 48))
    h, w = _grid(kw, 4)
    shares = []
    for i, j in [(0, 0), (h - 1, w - 1), (h // 2, w // 3), (1, w - 2)]:
        share = _patch_shares(vit, layer, 3, i, j, size, 4)
        assert share.argmax().item() == i * w + j
        assert share[i, j] >= 20 / (h * w)
        shares.append(share[i, j].item())
    assert 0.25 < sum(shares) / len(shares) < 0.75  # "about 40%"


# --------------------------------------------------------------------------- renders


@pytest.mark.parametrize("kw", VARIANTS.values(), ids=VARIANTS.keys())
def test_channel_objective_at_an_mlp_raises_it_twofold(kw):
    """With the transformer recipe's settings: pixels, jitter by whole patches."""
    vit = ViT(**kw)
    h, w = _grid(kw)
    raised = 0
    for unit in range(4):
        result = midnite.render(
            vit,
            obj.channel("blocks.1.mlp.act", unit),
            size=(8 * h, 8 * w),
            steps=48,
            param="pixel",
            transforms=midnite.transforms.patch_transforms(8),
            progress=False,
        )
        if result.start.item() > 0.05:  # "twice" means something for a unit that starts above 0
            assert result.final.item() >= 2 * result.start.item(), unit
            raised += 1
        else:  # a unit that starts below zero may sit left of GELU's minimum: it still rises
            assert result.final.item() > result.start.item(), unit
    assert raised >= 2
    assert hook_count(vit) == 0


def test_spatial_objective_and_classic_splits_on_token_layers():
    from midnite.visualization.base import (
        ChannelSplit,
        NeuronSplit,
        PixelActivation,
        SpatialSplit,
        SplitSelector,
    )

    vit = ViT(img_size=(32, 32), reg_tokens=2)
    result = midnite.render(
        vit, obj.spatial("blocks.1", 2, 3), size=32, steps=4, transforms=None, progress=False
    )
    assert result.final.item() > result.start.item()
    for split, index in [
        (ChannelSplit(), [7]),
        (SpatialSplit(), [1, 2]),
        (NeuronSplit(), [7, 1, 2]),
    ]:
        method = PixelActivation(
            vit,
            SplitSelector(split, index),
            layer="blocks.0.mlp.act",
            iter_n=2,
            opt_n=2,
            init_size=32,
            progress=False,
        )
        assert method.visualize().shape == (3, 32, 32)
    with pytest.raises(IndexError, match=r"row index 4 out of range .* 4 rows"):
        midnite.render(
            vit,
            obj.neuron("blocks.1", 0, y=4, x=0),
            size=32,
            steps=1,
            transforms=None,
            progress=False,
        )
    assert hook_count(vit) == 0


def test_fixed_grid_refuses_other_sizes_naming_both():
    vit = ViT()
    expected = r"takes 32x48 px images \(a 4x6 grid of 8x8 px patches\), got 40x48"
    with pytest.raises(ValueError, match=expected):
        midnite.layers(vit, (40, 48))
    with pytest.raises(ValueError, match=expected), ActivationCapture(vit, ["blocks.0"]) as cap:
        cap(torch.rand(1, 3, 40, 48))
    # the 'standard' stack pads by 6 px: the message names the size the model was given
    with pytest.raises(ValueError, match=r"got 44x60; .*dynamic_img_size.*transforms='patch'"):
        midnite.render(
            vit,
            obj.channel("blocks.0", 0),
            size=(32, 48),
            steps=1,
            transforms="standard",
            progress=False,
        )
    assert hook_count(vit) == 0
    with pytest.raises(ValueError, match=r"got 33x48"):
        midnite.layers(vit, (33, 48))  # same grid, but not the size the model takes


def test_dynamic_grid_follows_the_image_size():
    vit = ViT(dynamic_img_size=True)
    assert token_grid(vit) == TokenGrid(None, prefix=1, patch=8)
    table = {i.name: i.shape for i in midnite.layers(vit, (40, 64))}
    assert table["blocks.1.mlp.act"] == (128, 5, 8)
    assert table["patch_embed"] == (5, 8, 32)  # (B, h, w, D) from timm's NHWC: as it is
    assert midnite.layers(vit, (24, 16)).names() == midnite.layers(vit, 224).names()
    assert {i.name: i.shape for i in midnite.layers(vit, (24, 16))}["blocks.0"] == (32, 3, 2)
    # timm's dynamic grid without dynamic_img_pad takes whole patches only: a stack that pads
    # by 12 px is refused, whole-patch jitter is fine
    with pytest.raises(ValueError, match=r"sides are whole 8x8 px patches, got 52x68; .*pad"):
        midnite.render(
            vit,
            obj.channel("blocks.0", 1),
            size=(40, 56),
            steps=1,
            transforms="standard",
            progress=False,
        )
    result = midnite.render(
        vit,
        obj.channel("blocks.1.mlp.act", 1),
        size=(40, 56),
        steps=3,
        transforms="patch",
        progress=False,
    )
    assert result.images.shape == (1, 3, 40, 56)
    with pytest.raises(ValueError, match=r"at least 8x8 px, got 4x16"):
        midnite.layers(vit, (4, 16))


def test_explicit_token_grid_for_another_layout():
    """A transformer without timm's attribute names is read once its grid is declared."""

    class Mixer(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(16)
            self.hidden = nn.Linear(16, 24)
            self.out = nn.Linear(24, 16)

        def forward(self, x):
            mixed = x + x.mean(1, keepdim=True)  # every token sees all others
            return x + self.out(torch.relu(self.hidden(self.norm(mixed))))

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.stem = nn.Conv2d(3, 16, 8, stride=8)
            self.register = nn.Parameter(torch.randn(1, 3, 16))
            self.mixers = nn.Sequential(Mixer(), Mixer())
            self.out = nn.Linear(16, 3)

        def forward(self, x):
            x = self.stem(x).flatten(2).transpose(1, 2)
            x = torch.cat([self.register.expand(x.shape[0], -1, -1), x], 1)
            return self.out(self.mixers(x)[:, 0])

    model = Encoder()
    assert token_grid(model) is None
    assert {i.name: i.shape for i in midnite.layers(model, (16, 40))}["mixers.0"] == (13, 16)
    set_token_grid(model.out, None)  # removing what is not there is fine
    try:
        set_token_grid(model, TokenGrid((2, 5), prefix=3, patch=8))
        assert token_grid(model) == TokenGrid((2, 5), prefix=3, patch=8)
        table = {i.name: i.shape for i in midnite.layers(model)}  # 16x40, the grid's size
        assert table["mixers.0"] == (16, 2, 5)
        assert table["mixers.1.hidden"] == (24, 2, 5)
        assert table["stem"] == (16, 2, 5)  # a conv's map, as it was
        result = midnite.render(
            model,
            obj.neuron("mixers.1.hidden", 4, y=1, x=3),
            size=(16, 40),
            steps=8,
            param="pixel",
            transforms=None,
            progress=False,
        )
        assert result.final.item() > result.start.item()
        with pytest.raises(ValueError, match=r"takes 16x40 px images .* got 24x40"):
            midnite.layers(model, (24, 40))
    finally:
        set_token_grid(model, None)
    assert token_grid(model) is None


def test_set_token_grid_overrides_timm_attributes():
    vit = ViT()
    set_token_grid(vit, TokenGrid((4, 6), prefix=1))  # no patch: the size is not checked
    try:
        assert {i.name: i.shape for i in midnite.layers(vit, (32, 48))}["blocks.0"] == (32, 4, 6)
    finally:
        set_token_grid(vit, None)


def test_wrapped_vit_is_found_under_its_parent():
    """``models.load('timm:...')`` style wrappers: the ViT is a submodule, not the root."""
    wrapped = nn.Sequential(midnite.engine.Normalize.imagenet(), ViT())
    table = {i.name: i.shape for i in midnite.layers(wrapped)}
    assert table["1.blocks.1.mlp.act"] == (128, 4, 6)
    assert table[""] == (5,)
    result = midnite.render(
        wrapped,
        obj.channel("1.blocks.0", 0),
        size=(32, 48),
        steps=2,
        transforms=None,
        progress=False,
    )
    assert result.images.shape == (1, 3, 32, 48)


# --------------------------------------------------------------------------- the API


def test_token_grid_checks_its_arguments():
    assert TokenGrid((4, 6)).dynamic is False
    assert TokenGrid(patch=16).dynamic is True
    assert TokenGrid(4, patch=8).grid == (4, 4)
    assert TokenGrid((4, 6), patch=8).image_size == (32, 48)
    assert TokenGrid(patch=8).image_size is None
    assert repr(TokenGrid((2, 3), prefix=1, patch=(4, 4))) == (
        "TokenGrid(grid=(2, 3), prefix=1, patch=(4, 4))"
    )
    with pytest.raises(ValueError, match=r"needs grid=\(h, w\), or patch=.*got neither"):
        TokenGrid()
    with pytest.raises(ValueError, match=r"grid must be a positive int or \(height, width\)"):
        TokenGrid((4, 0))
    with pytest.raises(TypeError, match=r"prefix must be an int >= 0, got str '1'"):
        TokenGrid((4, 4), prefix="1")
    with pytest.raises(ValueError, match=r"prefix must be an int >= 0, got -1"):
        TokenGrid((4, 4), prefix=-1)
    with pytest.raises(TypeError, match=r"pad must be True or False, got int 1"):
        TokenGrid(patch=8, pad=1)
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module, got str"):
        set_token_grid("vit", TokenGrid((4, 4)))
    with pytest.raises(TypeError, match=r"grid must be a TokenGrid .*got tuple: \(4, 4\)"):
        set_token_grid(ViT(), (4, 4))
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module, got int"):
        token_grid(3)


def test_grid_for_rounds_as_the_model_does():
    assert TokenGrid(patch=8).grid_for(40, 24) == (5, 3)
    assert TokenGrid(patch=8, pad=True).grid_for(40, 20) == (5, 3)
    with pytest.raises(ValueError, match=r"^the model takes images whose sides are whole 8x8"):
        TokenGrid(patch=8).grid_for(40, 20)
    assert TokenGrid((5, 3), patch=8, pad=True).grid_for(40, 20) == (5, 3)
    assert TokenGrid((4, 4)).grid_for(1, 1) == (4, 4)  # unknown patch: nothing to check
    with pytest.raises(ValueError, match=r"^the model takes 32x32 px images"):
        TokenGrid((4, 4), patch=8).grid_for(32, 40)


def test_tokens_to_map():
    t = torch.arange(2 * 7 * 3, dtype=torch.float32).view(2, 7, 3).requires_grad_(True)
    m = tokens_to_map(t, (2, 3), prefix=1)
    assert m.shape == (2, 3, 2, 3)
    torch.testing.assert_close(m[:, :, 1, 2], t[:, 1 + 1 * 3 + 2])
    m.sum().backward()  # differentiable; the prefix token gets no gradient
    assert t.grad[:, 0].abs().sum() == 0 and (t.grad[:, 1:] == 1).all()
    with pytest.raises(ValueError, match=r"must number prefix \+ h\*w = 1 \+ 2\*2 = 5, got 7"):
        tokens_to_map(t, (2, 2), prefix=1)
    with pytest.raises(ValueError, match=r"\(B, N, D\) tensor, got \(7, 3\)"):
        tokens_to_map(t[0], (2, 3), prefix=1)


def test_token_reader_on_a_cnn_does_nothing():
    from conftest import tiny_cnn

    cnn = tiny_cnn()
    reader = TokenReader(cnn, [n for n, _ in cnn.named_modules()])
    assert not reader and reader.owners() == {} and reader.attach() == []
    x = torch.rand(1, 4, 5)
    assert reader.read("0", x) is x


def test_block_layers_are_the_documented_starting_points():
    assert tokens.block_layers(ViT(depth=3)) == [
        "blocks.0.mlp.act",
        "blocks.0",
        "blocks.1.mlp.act",
        "blocks.1",
        "blocks.2.mlp.act",
        "blocks.2",
    ]
    wrapped = nn.Sequential(nn.Identity(), ViT(depth=1))
    assert tokens.block_layers(wrapped) == ["1.blocks.0.mlp.act", "1.blocks.0"]
    from conftest import tiny_cnn

    assert tokens.block_layers(tiny_cnn()) == []


def test_transformer_recipe_for_token_layers_only():
    from midnite.engine import recipes

    vit = ViT()
    assert recipes.for_model(vit, obj.channel("blocks.0.mlp.act", 0)) is recipes.TRANSFORMER
    assert recipes.for_model(vit, obj.channel("blocks.0.mlp.act:0", 0)) is recipes.TRANSFORMER
    assert recipes.for_model(vit, obj.class_logit(1)) is recipes.CLASS
    from conftest import tiny_cnn

    assert recipes.for_model(tiny_cnn(), obj.channel("0", 0)) is recipes.FEATURE
    assert recipes.TRANSFORMER.param == "pixel" and recipes.TRANSFORMER.transforms == "patch"


def test_patch_jitter_moves_by_whole_patches_and_keeps_the_size():
    t = midnite.transforms.patch_transforms(8)
    assert repr(t) == "Compose(Pad(pad=8, mode='reflect'), Jitter(d=16, step=8))"
    x = torch.rand(6, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    y = t(x, torch.Generator().manual_seed(1))
    assert y.shape == x.shape
    padded = F.pad(x, (8, 8, 8, 8), mode="reflect")
    for k in range(6):  # each image is the padded one cropped at a multiple of 8 px
        assert any(
            torch.equal(y[k], padded[k, :, dy : dy + 32, dx : dx + 48])
            for dy in (0, 8, 16)
            for dx in (0, 8, 16)
        )
    with pytest.raises(ValueError, match=r"d must be a multiple of step=8, got d=12"):
        midnite.transforms.Jitter(12, step=8)
    with pytest.raises(ValueError, match=r"d must be a multiple of step=3, got d=4"):
        midnite.transforms.jitter(x, 4, step=3)
    assert repr(midnite.transforms.Jitter(4)) == "Jitter(d=4)"


VIT_FILE = """
from midnite.known_answer import TinyViT


def fixed():
    return TinyViT(img_size=(32, 48), patch_size=8)


def dynamic():  # any size: padded to whole patches
    return TinyViT(img_size=(32, 48), patch_size=8, dynamic_img_size=True)
"""


def test_cli_lists_and_renders_token_layers(tmp_path, capsys):
    from midnite.cli import main

    path = tmp_path / "vit.py"
    path.write_text(VIT_FILE)
    assert main(["layers", f"{path}:fixed", "--size", "32x48"]) == 0
    rows = {line.split()[0]: line.split()[1:3] for line in capsys.readouterr().out.splitlines()[3:]}
    assert rows["blocks.1.mlp.act"] == ["GELU", "64x4x6"]
    assert rows["blocks.0"] == ["Block", "16x4x6"]
    out = tmp_path / "out"
    argv = ["render", f"{path}:dynamic", "--layer", "blocks.1.mlp.act", "--units", "0-1"]
    assert main([*argv, "--steps", "2", "--size", "30x50", "--no-progress", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.png") if "_alpha" not in p.name) == [
        "blocks.1.mlp.act_channel_0000.png",
        "blocks.1.mlp.act_channel_0001.png",
    ]


def test_render_picks_the_transformer_recipe_for_token_layers():
    from midnite.known_answer import grating_vit

    vit = grating_vit()
    config = midnite.RenderConfig.resolve(
        vit, midnite.objectives.channel("blocks.1.mlp.act", 0), size=(32, 48)
    )
    assert config.recipe.name == "transformer" and config.param == "pixel"
    assert config.to_json()["recipe"] == "transformer"
    cnn_config = midnite.RenderConfig.resolve(
        nn.Sequential(nn.Conv2d(3, 4, 3)), midnite.objectives.channel("0", 0), size=8
    )
    assert cnn_config.recipe.name == "feature"
    result = midnite.render(
        vit,
        midnite.objectives.channel("blocks.1.mlp.act", 0),
        size=(32, 48),
        steps=2,
        progress=False,
    )
    assert result.ok and result.settings["recipe"] == "transformer"
