"""Learning and applying a concept dictionary: rows of activations in, ``(n, C)`` directions out.

``learn_nmf`` (scikit-learn: k-means of the normalised rows, refined by NMF with an L1 penalty on
the codes, so an overcomplete dictionary is identifiable), ``learn_sae`` (a TopK sparse
autoencoder in torch, for signed rows), ``encode`` (codes of rows under a dictionary),
``quality`` (R², sparsity, dead concepts) and ``match`` (Hungarian matching of two dictionaries).
Seeded and deterministic on the CPU; nothing is written.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from midnite.errors import UsageError

__all__ = ["encode", "learn_nmf", "learn_sae", "match", "quality", "sklearn"]

INSTALL = "pip install 'midnite[concepts]'"


def sklearn() -> object:
    """The scikit-learn module, or a one-line error naming the extra to install."""
    try:
        import sklearn as sk
        import sklearn.cluster
        import sklearn.decomposition
    except ImportError:
        raise UsageError(f"concept dictionaries need scikit-learn: {INSTALL}") from None
    return sk


def _unit_rows(d: Tensor) -> Tensor:
    return d / d.norm(dim=1, keepdim=True).clamp_min(1e-12)


def encode_nmf(x: Tensor, d: Tensor, l1: float, iters: int = 100) -> Tensor:
    """Non-negative codes ``u`` with ``u @ d ~ x``: multiplicative updates with an L1 penalty
    ``l1 * mean(x)`` per code. Shape: x ``(m, C)``, d ``(n, C)`` -> ``(m, n)``."""
    x = x.clamp_min(0).double()
    d = d.double()
    xd = x @ d.T
    gram = d @ d.T
    lam = l1 * float(x.mean()) if x.numel() else 0.0
    u = xd.clamp_min(0) / gram.diagonal().clamp_min(1e-12)
    for _ in range(iters):
        u = u * xd.clamp_min(0) / (u @ gram + lam + 1e-12)
    return u.float()


def encode_sae(x: Tensor, state: dict[str, Tensor], topk: int) -> Tensor:
    """TopK codes: ``relu(W (x - pre) + b)``, all but the ``topk`` largest set to 0."""
    z = torch.relu((x.float() - state["pre"]) @ state["W"] + state["b"])
    if topk < z.shape[1]:
        kth = z.topk(topk, dim=1).values[:, -1:]
        z = torch.where(z >= kth, z, torch.zeros_like(z))
    return z


def encode(x: Tensor, d: Tensor, method: str, settings: dict, encoder: dict | None) -> Tensor:
    """Codes of rows ``x (m, C)`` under ``d (n, C)``: the SAE's encoder when there is one,
    else non-negative sparse codes (``nmf``) or plain projections (signed rows)."""
    if encoder is not None:
        return encode_sae(x, encoder, int(settings["topk"]))
    if method == "nmf":
        return encode_nmf(x, d, float(settings.get("l1", 0.0)))
    return (x.float() @ d.T).clamp_min(0)


def reconstruct(codes: Tensor, d: Tensor, encoder: dict | None) -> Tensor:
    """``codes @ d`` (plus the SAE's ``pre``)."""
    out = codes @ d
    return out + encoder["pre"] if encoder is not None else out


def _kmeans(x: Tensor, n: int, seed: int) -> Tensor:
    """``(n, C)`` centres of spherical k-means (k-means of the unit rows; zero rows left out)."""
    sk = sklearn()
    x = x.double()
    norms = x.norm(dim=1)
    live = x[norms > 1e-6 * float(norms.max().clamp_min(1e-30))]
    if live.shape[0] < n:
        raise UsageError(
            f"n={n} concepts need at least {n} non-zero activation rows, got {live.shape[0]}; "
            "lower n, or give more images or rows_per_image"
        )
    km = sk.cluster.KMeans(n_clusters=n, n_init=3, random_state=seed)  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a ConvergenceWarning on duplicate rows says nothing
        km.fit(_unit_rows(live).numpy())
    return _unit_rows(torch.from_numpy(km.cluster_centers_))


def learn_nmf(x: Tensor, n: int, seed: int, l1: float, iters: int) -> Tensor:
    """``(n, C)`` unit directions of non-negative rows ``x (m, C)``.

    Plain NMF of an overcomplete dictionary is not identifiable (the channels themselves
    reconstruct everything); the directions of sparse codes are: spherical k-means of the
    rows gives the start, NMF with an L1 penalty on the codes refines it (``iters`` > 0).
    """
    sk = sklearn()
    xs = x.double()
    h = _unit_rows(_kmeans(xs, n, seed).clamp_min(0))
    if iters == 0:
        return h.float()
    w = encode_nmf(xs, h, l1).double()
    nmf = sk.decomposition.NMF(  # type: ignore[attr-defined]
        n_components=n,
        init="custom",
        solver="cd",
        alpha_W=l1 * float(xs.mean()) / max(1, xs.shape[1]),
        alpha_H=0.0,
        l1_ratio=1.0,
        max_iter=iters,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached: the refinement is bounded on purpose
        nmf.fit_transform(xs.numpy(), W=w.numpy().copy(), H=h.numpy().copy())
    d = torch.from_numpy(nmf.components_)
    dead = d.norm(dim=1) < 1e-12
    d[dead] = h[dead]  # a component NMF emptied keeps its k-means start
    return _unit_rows(d).float()


def learn_sae(
    x: Tensor, n: int, seed: int, topk: int, steps: int, lr: float = 1e-3, batch: int = 1024
) -> tuple[Tensor, dict[str, Tensor]]:
    """A TopK sparse autoencoder (Gao et al. 2024) on rows ``x (m, C)``: ``(n, C)`` unit
    decoder directions and the encoder (``W (C, n)``, ``b (n,)``, ``pre (C,)``)."""
    gen = torch.Generator().manual_seed(seed)
    x = x.float()
    pre = x.median(dim=0).values.clone().requires_grad_()
    dec = _kmeans(x - pre.detach(), n, seed).float().requires_grad_()  # start: the row clusters
    w = dec.detach().T.clone().requires_grad_()
    b = torch.zeros(n, requires_grad=True)
    opt = torch.optim.Adam([pre, dec, w, b], lr=lr)
    for _ in range(steps):
        rows = x[torch.randint(0, x.shape[0], (min(batch, x.shape[0]),), generator=gen)]
        z = encode_sae(rows, {"W": w, "b": b, "pre": pre}, topk)
        loss = ((z @ dec + pre - rows) ** 2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            dec.copy_(_unit_rows(dec))
    state = {"W": w.detach().clone(), "b": b.detach().clone(), "pre": pre.detach().clone()}
    return dec.detach().clone(), state


def quality(x: Tensor, codes: Tensor, recon: Tensor) -> dict[str, float]:
    """``r2`` of the reconstruction, ``sparsity`` (mean share of concepts active on a row),
    ``dead`` (share of concepts never active)."""
    x = x.double()
    resid = float(((x - recon.double()) ** 2).sum())
    total = float(((x - x.mean(0)) ** 2).sum())
    active = codes > 1e-6 * float(codes.max().clamp_min(0))
    return {
        "r2": 1.0 - resid / total if total > 0 else float("nan"),
        "sparsity": float(active.float().mean()),
        "dead": float((~active.any(0)).float().mean()),
    }


def match(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Match the rows of ``a (n, C)`` one to one with rows of ``b (m, C)``, m >= n, by the
    Hungarian method on cosines: ``(cosines (n,), index into b (n,))``."""
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise UsageError(
            f"match needs two (n, C) dictionaries of one width, got {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        )
    if b.shape[0] < a.shape[0]:
        raise UsageError(f"match: b has fewer rows ({b.shape[0]}) than a ({a.shape[0]})")
    sk = sklearn()  # scipy comes with scikit-learn
    del sk
    from scipy.optimize import linear_sum_assignment  # type: ignore[import-untyped]

    cos = _unit_rows(a.double()) @ _unit_rows(b.double()).T
    rows, cols = linear_sum_assignment(-cos.numpy())
    order = torch.as_tensor(cols)[torch.as_tensor(rows).argsort()]
    return cos[torch.arange(a.shape[0]), order].float(), order
