"""``midnite layers``: the addressable layers of a model with their output shapes."""

from __future__ import annotations

import argparse
from typing import Any

from midnite.cli.common import default_size, device, layer_table, load
from midnite.cli.options import optional_size

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``layers`` sub-parser to ``sub`` (argparse's subparsers)."""
    lay = sub.add_parser("layers", help="list the addressable layers with output shapes")
    lay.add_argument("model", metavar="MODEL")
    lay.add_argument(
        "--size", metavar="HxW", help="input HxW (default: the model's native size, else 224)"
    )
    lay.add_argument("--device", metavar="D", help="torch device, e.g. cpu or cuda:0 (default cpu)")


def run(args: argparse.Namespace) -> int:
    """Print the layer table of ``args.model`` at ``--size`` (default: its native size)."""
    size = optional_size(args.size)
    dev = device(args.device)
    model = load(args.model)
    size = size or default_size(args.model)
    table = layer_table(model, args.model, size, dev)
    print(f"{args.model}, input {size[0]}x{size[1]}:")
    print(table)
    return 0
