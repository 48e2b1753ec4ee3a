"""``midnite serve DIR``: the folder's pages over HTTP, and with ``--model`` live renders.

Loopback only by default; another ``--host`` needs ``--token`` (or one is generated and
printed). Ctrl-C and SIGTERM stop uvicorn; running renders are cancelled and nothing half
written is left (the runner writes atomically).
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path
from typing import Any

from midnite.cli.common import default_size, device, layer_table, load
from midnite.cli.options import number
from midnite.engine import input_channels
from midnite.engine.checks import check_positive_int
from midnite.errors import UsageError
from midnite.serve.jobs import Limits

__all__ = ["LOOPBACK", "register", "run"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def register(sub: Any) -> None:
    """Add the ``serve`` sub-parser to ``sub`` (argparse's subparsers)."""
    srv = sub.add_parser(
        "serve",
        help="serve a render or catalogue folder in the browser, with live renders (--model)",
        description="Serve DIR's pages on http://HOST:PORT/. With --model: /live renders any "
        "unit in the browser into DIR, and /api/* is the JSON API the page uses. Needs "
        "pip install 'midnite[serve]'.",
    )
    srv.add_argument("dir", metavar="DIR")
    srv.add_argument("--model", metavar="MODEL", help="the model for live renders (as for render)")
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    srv.add_argument(
        "--port", type=number("--port", int, _port), default=8000, help="TCP port (8000)"
    )
    srv.add_argument(
        "--token", metavar="T", help="every request must carry it (needed off the loopback)"
    )
    jobs, waiting = (number(n, int, check_positive_int) for n in ("--max-jobs", "--queue"))
    srv.add_argument("--max-jobs", metavar="N", type=jobs, default=1, help="renders at once (1)")
    srv.add_argument(
        "--queue", metavar="Q", type=waiting, default=4,
        help="renders waiting at most; more are answered 429 (4)",
    )  # fmt: skip
    srv.add_argument("--device", metavar="D", help="torch device for renders (cpu)")
    limits = Limits()
    for flag, meta, kind, default, what in (
        ("--max-steps", "S", int, limits.max_steps, "steps of one render at most"),
        ("--max-size", "PX", int, limits.max_size, "image side of one render at most"),
        ("--time-limit", "SEC", float, limits.seconds, "seconds of one render at most"),
    ):
        srv.add_argument(flag, metavar=meta, type=number(flag, kind, _positive), default=default,
                         help=f"{what} ({default:g})")  # fmt: skip


def _positive(name: str, value: object) -> object:
    if not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return value


def _port(name: str, value: object) -> int:
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"{name} must be a port from 1 to 65535, got {value!r}")
    return value


def _token(args: argparse.Namespace) -> str | None:
    if args.token is not None and len(args.token) < 8:
        raise UsageError(f"--token must be at least 8 characters, got {len(args.token)}")
    if args.token is None and args.host not in LOOPBACK:
        args.token = secrets.token_urlsafe(24)
        print(f"midnite: serving on {args.host}: token {args.token}", file=sys.stderr)
    return args.token


def _live(args: argparse.Namespace, folder: Path) -> dict:
    """The live options of ``create_app``: the model, its layers, the job manager."""
    if args.model is None:
        return {}
    from midnite.cli.folders import RENDER, kind
    from midnite.serve import JobManager

    if kind(folder) == RENDER:
        raise UsageError(
            f"{str(folder)!r} holds the results of 'midnite render'; live renders go into a "
            "catalogue folder (or an empty one): serve this one without --model"
        )
    dev = device(args.device)
    model = load(args.model)
    size = default_size(args.model)
    table = layer_table(model, args.model, size, dev)
    shapes = {i.name: tuple(i.shape) for i in table if i.shape and i.calls == 1}
    limits = Limits(
        max_jobs=args.max_jobs, queue=args.queue, max_steps=args.max_steps,
        max_size=args.max_size, seconds=args.time_limit,
    )  # fmt: skip
    manager = JobManager(model, args.model, folder, shapes, limits=limits, device=str(dev))
    return {"manager": manager, "model": model, "size": size[0],
            "channels": input_channels(model)}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """``midnite serve``: the app (``midnite.serve.create_app``) under uvicorn until stopped."""
    from midnite.serve import create_app, require

    require()
    import uvicorn

    folder = Path(args.dir)
    if not folder.is_dir():
        raise UsageError(f"DIR must be a folder to serve, got {args.dir!r} (no such folder)")
    token = _token(args)
    live = _live(args, folder)
    app = create_app(folder, token=token, loopback=args.host in LOOPBACK, **live)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                            timeout_graceful_shutdown=5)  # fmt: skip
    manager = live.get("manager")

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            if manager is not None:  # renders stop at their next step; event streams end
                manager.stop()
            super().handle_exit(sig, frame)

    where = f"http://{args.host}:{args.port}/"
    print(f"midnite: serving {str(folder)!r} on {where}" + ("live" if live else ""), flush=True)
    try:
        Server(config).run()
    finally:
        if manager is not None:
            manager.close()
    return 0
