"""``midnite serve`` (floor 6, beside the CLI): a local web application over a render or
catalogue folder, with live renders, "what fires on my photo" and a small JSON API.

Contract: only files inside the folder are served; live renders are bounded (``Limits``),
cancellable, and written through the one runner (``jobs.run``) into the same folder; the
server answers only for the loopback address unless given a token. Starlette and uvicorn
(``pip install 'midnite[serve]'``) are imported only by ``create_app`` and ``serve.app``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from midnite.errors import UsageError
from midnite.serve.files import content_type, resolve
from midnite.serve.fires import fires
from midnite.serve.jobs import STATES, Job, JobManager, Limits, QueueFull, Request

__all__ = [
    "STATES",
    "Job",
    "JobManager",
    "Limits",
    "QueueFull",
    "Request",
    "content_type",
    "create_app",
    "fires",
    "require",
    "resolve",
]

MISSING = "midnite serve needs Starlette and uvicorn: pip install 'midnite[serve]'"


def require() -> None:
    """A ``UsageError`` naming the extra to install when Starlette, uvicorn or
    python-multipart is missing."""
    try:
        import python_multipart  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise UsageError(f"{MISSING} ({err})") from None


def create_app(folder: str | Path, **options: Any) -> Any:
    """The ASGI application serving ``folder`` (``midnite.serve.app.create_app``)."""
    require()
    from midnite.serve.app import create_app as make

    return make(folder, **options)
