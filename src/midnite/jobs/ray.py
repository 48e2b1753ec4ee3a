"""The Ray executor: workers keep the model, batches are actor calls, the runner writes.

    with RayExecutor("path/model.py:net", address=None) as executor:  # None: local Ray
        summary = jobs.run(work, "DIR", executor=executor)

Imported only when asked for (``midnite catalogue --ray``): the rest of midnite never imports
Ray; ``midnite.catalogue_ray`` is this module's old path (``Ray`` the class's old name).
The contract (DESIGN section 7):

- Without an address a local Ray instance is started for the run and shut down at the end, also
  on an error or Ctrl-C: every server of it listens on 127.0.0.1 only (Ray's loopback mode,
  ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, no dashboard), it uses a fresh token of its own
  (nothing is written to ``~/.ray``), and a watchdog process SIGKILLs its processes within a
  second when this process dies without closing it (SIGKILL, a crash).
- With an address (``HEAD:6379``) an existing cluster is joined and left running. Its
  authentication is probed first (in a child process, so Ray's log lines stay out of sight):
  a cluster with token authentication is joined with the token Ray's own tools find
  (``RAY_AUTH_TOKEN``, the file ``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``); a cluster
  without authentication is refused unless ``insecure``; a port that does not answer as a gRPC
  server, a missing or rejected token are one-line :class:`RayError` s within seconds.
- One actor per worker builds the model once, from its *name* (``models.load``), and keeps it:
  no shared filesystem is needed; for a file model (``path.py:function``) the file's source is
  sent along (a file that imports files next to it is not supported). Each worker pins torch
  to ``threads`` threads (default 1), so its images are byte-identical to an in-process run
  with the same number of threads. Default workers: the cluster's CPUs // ``threads``.
- Each batch is one actor call returning its ``RenderResult``; results are taken as they
  complete (``ray.wait``) and only the driver writes files. A worker that dies mid-batch is
  restarted by Ray (``max_restarts``) and its call retried (``max_task_retries``).
- While connected, SIGTERM raises ``KeyboardInterrupt`` (or calls the handler that was there
  before, when one was set from Python) instead of Ray's ``sys.exit``; every environment
  variable and signal handler changed is restored on close.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from midnite.analysis import TopExamples, merge, top_examples
from midnite.analysis.concepts import collect
from midnite.analysis.reservoir import Reservoir
from midnite.engine import RenderResult
from midnite.errors import UsageError
from midnite.images import list_images
from midnite.jobs.plan import Batch
from midnite.jobs.watchdog import descendants, start_watchdog

__all__ = [
    "INSTALL",
    "Ray",
    "RayError",
    "RayExecutor",
    "build_model",
    "check_address",
    "import_ray",
]

INSTALL = "pip install 'midnite[ray]'"
RESTARTS = 3  # restarts of a lost worker (and retries of the batch it held)
CHUNK = 64  # images per dataset-examples task: the driver holds one chunk's bytes per worker
LOOPBACK_MODE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray's servers on 127.0.0.1 only
TOKEN_HELP = (
    "copy the head's token ('ray get-auth-token' on the head) into ~/.ray/auth_token here, or "
    "set RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH, a file holding it)"
)


class RayError(UsageError, RuntimeError):
    """Ray is missing or the cluster cannot be reached: one line for people (exit status 2)."""


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`RayError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayError(f"--ray needs Ray, which is not installed; install it: {INSTALL}") from None
    return ray


def model_spec(name: str) -> tuple[str, str | None]:
    """``(name a worker loads, file source or None)``: a file model travels as its source."""
    prefix, _, function = name.partition(":")
    if name.count(":") == 1 and prefix.endswith(".py") and Path(prefix).is_file():
        return f"{Path(prefix).name}:{function}", Path(prefix).read_text()
    return name, None


# an HTTP/2 connection preface and an empty SETTINGS frame: a gRPC server (Ray's GCS) answers
# with a SETTINGS frame (type 4) before anything else, whatever its authentication
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def check_address(address: str) -> str:
    """``address`` when it reads as a Ray address (``HOST:PORT``, ``auto``, ``ray://HOST:PORT``),
    else a one-line :class:`RayError` naming what was expected."""
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    bad = set(host) & set(" \t\r\n/@") or not host.strip("[]")
    if address != "auto" and (not sep or bad or not port.isdigit() or not 0 < int(port) < 65536):
        raise RayError(
            "--ray: expected the address of a Ray head as HOST:PORT (e.g. 10.0.0.5:6379), "
            f"'auto' or ray://HOST:PORT, got {address!r}"
        )
    return address


def _reachable(address: str, timeout: float) -> str | None:
    """A :class:`RayError` unless a gRPC server answers at ``host:port`` within ``timeout``;
    else this machine's address on the way there (the driver's node address).

    ``ray.init`` waits minutes for a port that does not answer; this check takes seconds.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return None  # "auto", ray:// and the like: Ray's own checks
    hint = "start it with 'ray start --head' on the head node, or leave out the address"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(_PREFACE)
            head = s.recv(9)
            here = str(s.getsockname()[0])
    except OSError as err:
        why = "no answer" if isinstance(err, TimeoutError) else (err.strerror or str(err))
        raise RayError(f"cannot reach the Ray cluster at {address!r} ({why}); {hint}") from None
    if len(head) < 4 or head[3] != 4:
        raise RayError(f"no Ray cluster answers at {address!r} (not a gRPC server); {hint}")
    return here


def _auth_probe(address: str, timeout: float) -> None:
    """Run in a child process (Ray's log lines go to its stderr): one word on stdout, ``ok``,
    ``auth`` (rejected: no or a wrong token), ``notoken`` or ``error WHY``."""
    import os

    from ray._raylet import AuthenticationTokenLoader, GcsClient  # type: ignore[attr-defined]
    from ray.exceptions import AuthenticationError

    if os.environ.get("RAY_AUTH_MODE") == "token":
        try:
            found = AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True)
        except Exception:  # Ray raises when the token file is missing or empty
            found = False
        if not found:
            print("notoken")
            return
    try:
        GcsClient(address=address).internal_kv_get(b"midnite", None, timeout=timeout)
    except AuthenticationError:
        print("auth")
        return
    except Exception as err:
        print("error", " ".join(str(err).split())[:200] or type(err).__name__)
        return
    print("ok")


def _ask(address: str, mode: str, timeout: float) -> str:
    """:func:`_auth_probe` of ``address`` in a child with ``RAY_AUTH_MODE=mode``."""
    code = inspect.getsource(_auth_probe) + f"\n_auth_probe({address!r}, {timeout!r})\n"
    env = {**os.environ, "RAY_AUTH_MODE": mode}
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True,
            timeout=timeout + 30, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return "error no answer"
    said = done.stdout.strip().splitlines() or done.stderr.strip().splitlines() or ["?"]
    return said[-1] if said[-1] in ("ok", "auth", "notoken") else f"error {said[-1][:200]}"


def _token_source() -> str:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    return f"RAY_AUTH_TOKEN_PATH ({path})" if path else "~/.ray/auth_token"


def join_environ(address: str, *, insecure: bool = False, timeout: float = 10.0) -> dict:
    """The environment that joins the cluster at ``address`` as its authentication asks.

    ``{"RAY_AUTH_MODE": "token"}`` for a cluster with token authentication when the token Ray
    finds here is accepted, ``{}`` for one without authentication when ``insecure``; otherwise a
    one-line :class:`RayError` saying why and how to fix it. ``auto`` and ``ray://`` addresses
    are left to Ray (``{}``).
    """
    if address == "auto" or address.startswith("ray://"):
        return {}
    plain = _ask(address, "disabled", timeout)
    if plain == "ok":
        if insecure:
            return {}
        raise RayError(
            f"the Ray cluster at {address!r} has authentication disabled (RAY_AUTH_MODE="
            "disabled): anyone who reaches it can run code there; restart it with token "
            "authentication (see 'midnite catalogue --help') or pass --ray-insecure to join anyway"
        )
    if plain != "auth":
        raise RayError(
            f"cannot join the Ray cluster at {address!r}: {plain.removeprefix('error ')}"
        )
    answer = _ask(address, "token", timeout)
    if answer == "ok":
        return {"RAY_AUTH_MODE": "token"}
    if answer == "notoken":
        raise RayError(
            f"the Ray cluster at {address!r} requires token authentication and no token was "
            f"found here: {TOKEN_HELP}"
        )
    if answer == "auth":
        raise RayError(
            f"the Ray cluster at {address!r} rejected the authentication token from "
            f"{_token_source()}: {TOKEN_HELP}"
        )
    raise RayError(f"cannot join the Ray cluster at {address!r}: {answer.removeprefix('error ')}")


def _set_environ(changes: dict[str, str | None]) -> None:
    """Set (``None``: unset) the variables, then reload Ray's config and token."""
    for name, value in changes.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

    Config.initialize("")  # the config first, then the token cache (Ray's own order)
    AuthenticationTokenLoader.instance().reset_cache()


@contextlib.contextmanager
def _native_stderr_hidden() -> Iterator[None]:
    """File descriptor 2 into a discarded file for the block: Ray's native log lines (e.g.
    "Failed to determine local IP" where there is no default route) are not shown; its
    errors reach the caller as exceptions."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no stderr to hide
        yield
        return
    try:
        with open(os.devnull, "wb") as sink:
            os.dup2(sink.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def build_model(name: str, source: str | None, threads: int) -> Any:
    """A worker's model as the driver's command loads it, from ``model_spec``'s ``(name,
    source)``, at ``threads`` torch threads (a file model is written to a temporary folder,
    loaded, and the folder removed)."""
    import tempfile

    import torch

    from midnite import models

    torch.set_num_threads(threads)
    if source is None:
        return models.load(name).float()
    with tempfile.TemporaryDirectory(prefix="midnite-model-") as folder:
        file, _, function = name.partition(":")
        Path(folder, file).write_text(source)
        return models.load(f"{Path(folder, file)}:{function}").float()


class _Worker:
    """A Ray actor's body: the model, built once from its name, and a render per call."""

    def __init__(self, name: str, source: str | None, threads: int):
        self.model = build_model(name, source, threads)

    def pid(self) -> int:
        return os.getpid()

    def examples(
        self, layers: list[str], images: dict[str, bytes], k: int, size: tuple[int, int]
    ) -> TopExamples:
        # shard=(0, 1): a chunk with no readable image is a result (merged), not an error
        return top_examples(self.model, layers, images, k, size=size, shard=(0, 1), progress=False)

    def reservoir(
        self, layer: str, images: dict[str, bytes], size: tuple[int, int], options: dict
    ) -> Reservoir:
        # a chunk with no readable image is an empty reservoir (merged), not an error
        return collect(self.model, layer, images, size=size, shard=(0, 1), **options)

    def render(self, config: Any) -> RenderResult:
        from midnite.engine import render_config

        return render_config(self.model, config, progress=False)


class RayExecutor:
    """A :class:`midnite.jobs.executors.Executor` over Ray actors (a context manager)."""

    def __init__(
        self,
        model: str,
        *,
        address: str | None = None,
        workers: int | None = None,
        threads: int = 1,
        timeout: float = 30.0,
        insecure: bool = False,
    ):
        self.address = check_address(address) if address else None
        if insecure and self.address is None:
            raise RayError("--ray-insecure is for joining a cluster: give its --ray ADDRESS")
        self.ray = import_ray()
        self.model, self.source = model_spec(model)
        self.workers = workers
        self.threads = threads
        self.timeout = timeout
        self.insecure = insecure
        self.actors: list[Any] = []
        self._connected = False
        self._environ: dict[str, str] | None = None  # os.environ before Ray's and ours
        self._sigterm: tuple[Any] | None = None  # (SIGTERM's handler before Ray's,) if saved
        self._watchdog: subprocess.Popen | None = None

    def __enter__(self) -> RayExecutor:
        main = threading.current_thread() is threading.main_thread()
        self._sigterm = (signal.getsignal(signal.SIGTERM),) if main else None
        try:
            self._connect()
            if self._sigterm is not None:  # Ray's is sys.exit(15) and a native stack dump
                previous = self._sigterm[0]
                signal.signal(signal.SIGTERM, previous if callable(previous) else _interrupt)
            self._start_workers()
        except BaseException:
            self.close()
            raise
        return self

    def _connect(self) -> None:
        ray = self.ray
        quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
        if self.address is not None:
            here = _reachable(self.address, min(self.timeout / 3, 5.0))
            changes = join_environ(self.address, insecure=self.insecure, timeout=self.timeout / 3)
            self._environ = dict(os.environ)
            _set_environ(dict(changes))
            try:
                with _native_stderr_hidden():  # the address facing the head is this node's
                    ray.init(address=self.address, _node_ip_address=here, **quiet)
            except Exception as err:
                raise RayError(
                    f"cannot join the Ray cluster at {self.address!r}: {type(err).__name__}: "
                    f"{' '.join(str(err).split())[:200]}"
                ) from None
            self._connected = True
            return
        from ray._private import ray_constants

        token = secrets.token_hex(32)  # this instance's own: nothing is written to ~/.ray
        changes = {LOOPBACK_MODE: "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
        self._environ = dict(os.environ)
        _set_environ({**changes, "RAY_AUTH_TOKEN_PATH": None})
        before = set(descendants({os.getpid(): ""})) if os.path.isdir("/proc/self") else set()
        cluster, ray_constants.ENABLE_RAY_CLUSTER = ray_constants.ENABLE_RAY_CLUSTER, False
        try:  # this process's half of the loopback mode; the variable is the children's half
            ray.init(
                address="local",
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                num_cpus=os.cpu_count() or 1,
                **quiet,
            )
        finally:
            ray_constants.ENABLE_RAY_CLUSTER = cluster
        self._connected = True
        self._watchdog = start_watchdog(before)

    def _start_workers(self) -> None:
        ray = self.ray
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n = self.workers or max(1, cpus // self.threads)
        actor = ray.remote(
            num_cpus=min(self.threads, cpus),
            max_restarts=RESTARTS,
            max_task_retries=RESTARTS,
        )(_Worker)
        self.actors = [actor.remote(self.model, self.source, self.threads) for _ in range(n)]

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Let the workers go; shut Ray down when this executor started it; put back the
        environment, SIGTERM's handler and stop the watchdog."""
        for a in self.actors:
            with contextlib.suppress(Exception):  # already gone
                self.ray.kill(a)
        self.actors = []
        try:
            if self._connected:  # a local instance stops; a joined cluster only loses this driver
                self._connected = False
                self.ray.shutdown()
        finally:
            if self._watchdog is not None:  # Ray is down: the watchdog leaves without a kill
                with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                    self._watchdog.communicate(b"stop", timeout=5)
                self._watchdog = None
            if self._environ is not None:  # ours and Ray's (PYTHONBREAKPOINT, usage stats)
                old, self._environ = self._environ, None
                _set_environ(
                    {k: old.get(k) for k in {*old, *os.environ} if os.environ.get(k) != old.get(k)}
                )
            if self._sigterm is not None:
                (previous,), self._sigterm = self._sigterm, None
                signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)

    def pids(self) -> list[int]:
        """The workers' process ids (for tests)."""
        return list(self.ray.get([a.pid.remote() for a in self.actors]))

    def _spread(
        self, items: Sequence[Any], submit: Callable[[Any, Any], Any], lost: str
    ) -> Iterator[tuple[Any, Any]]:
        """``(item, result or the exception)`` of ``submit(actor, item)``, one item per idle
        worker, as each result arrives. A worker lost past its restarts is not used again; when
        none is left, the items not sent get ``RuntimeError(lost)``."""
        if not self.actors:
            raise RuntimeError("Ray executor: use it in a 'with' block (starts the workers)")
        ray = self.ray
        queue = list(reversed(items))
        pending: dict[Any, tuple[Any, Any]] = {}
        idle = list(self.actors)
        while queue or pending:
            while queue and idle:
                item, actor = queue.pop(), idle.pop()
                pending[submit(actor, item)] = (item, actor)
            if not pending:  # every worker lost past its restarts
                while queue:
                    yield queue.pop(), RuntimeError(lost)
                return
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            item, actor = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayTaskError as err:  # the call raised: the cause
                cause = err.as_instanceof_cause()
                result = cause if isinstance(cause, Exception) else err
            except ray.exceptions.RayActorError as err:  # lost past its restarts: not used again
                result = err
                actor = None
            except Exception as err:
                result = err
            if actor is not None:
                idle.append(actor)
            yield item, result

    def run(self, batches: Sequence[Batch]) -> Iterator[tuple[Batch, RenderResult | Exception]]:
        """One batch per idle worker; each result is yielded as soon as it arrives."""
        yield from self._spread(
            batches,
            lambda actor, batch: actor.render.remote(batch.config),
            "every Ray worker was lost; a rerun renders what is missing",
        )

    def _folder_pass(
        self,
        folder: Path,
        exclude: Sequence[Path],
        desc: str | None,
        call: Callable,
        join: Callable,
    ) -> tuple[Any, list[tuple[str, str]]]:
        """A pass over the files of ``folder`` in chunks of ``CHUNK`` sent as bytes (read here,
        when a worker is free: one chunk's bytes per worker) to ``call(actor, {name: bytes})``;
        the parts are joined here as they come (``join(a, b)``): no shared filesystem needed.
        Returns the joined result and the files that could not be read here."""
        names = list_images(folder, exclude=exclude)
        chunks = [names[i : i + CHUNK] for i in range(0, len(names), CHUNK)]
        unreadable: list[tuple[str, str]] = []

        def submit(actor: Any, chunk: list[str]) -> Any:
            data = {}
            for name in chunk:
                try:
                    data[name] = (folder / name).read_bytes()
                except OSError as err:
                    unreadable.append((name, f"cannot read: {err}"))
            return call(actor, data)

        joined: Any = None
        bar = tqdm(total=len(names), unit="img", desc=desc, disable=desc is None, file=sys.stderr)
        try:
            for chunk, part in self._spread(chunks, submit, "every Ray worker was lost"):
                if isinstance(part, Exception):
                    raise part
                joined = part if joined is None else join(joined, part)
                bar.update(len(chunk))
        finally:
            bar.close()
        assert joined is not None  # list_images found files: at least one chunk
        return joined, unreadable

    def examples(
        self,
        layers: Sequence[str],
        folder: Path,
        k: int,
        size: tuple[int, int],
        progress: bool,
        exclude: Sequence[Path] = (),
    ) -> TopExamples:
        """``top_examples`` over ``folder``, sharded over the workers (``_folder_pass``)."""
        merged, unreadable = self._folder_pass(
            folder,
            exclude,
            "dataset examples" if progress else None,
            lambda actor, data: actor.examples.remote(list(layers), data, k, tuple(size)),
            merge,
        )
        merged = dataclasses.replace(merged, root=str(folder))
        if unreadable:
            merged.skipped = sorted([*merged.skipped, *unreadable])
        if merged.seen == 0:
            raise ValueError(f"images: no readable image in the folder {str(folder)!r}")
        return merged

    def reservoir(
        self,
        layer: str,
        folder: Path,
        size: tuple[int, int],
        progress: bool,
        exclude: Sequence[Path] = (),
        *,
        seed: int = 0,
        rows_per_image: int = 8,
        max_rows: int = 20_000,
    ) -> Reservoir:
        """``analysis.concepts.collect`` over ``folder``, sharded over the workers and merged:
        the same reservoir as in one process (keys come from the files' relative paths)."""
        options = {"seed": seed, "rows_per_image": rows_per_image, "max_rows": max_rows}
        merged, _ = self._folder_pass(
            folder,
            exclude,
            "concept rows" if progress else None,
            lambda actor, data: actor.reservoir.remote(layer, data, tuple(size), options),
            Reservoir.merge,
        )
        if merged.images == 0:
            raise UsageError(f"images: no readable image in the folder {str(folder)!r}")
        return merged


Ray = RayExecutor  # the old name (midnite.catalogue_ray.Ray)
