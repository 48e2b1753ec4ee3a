"""``catalogue --trust --ray``: each layer's trust computed by a Ray task (model and judge loaded
there by name), merged by the driver, gives the same ``trust.json`` and ``concept_trust.json``
as the in-process pass.

Marked ``ray_cluster`` (run with ``pytest -m ray_cluster`` in a loopback-only network
namespace, like ``test_catalogue_ray.py``); it starts and stops its own local Ray instance.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from midnite.cli import main
from midnite.errors import UsageError
from midnite.jobs.trust import CONCEPT_TRUST, TRUST
from test_trust_cards import _photos
from test_trust_cli import JUDGE_SRC

from conftest import CLI_MODEL_SRC


@pytest.mark.ray_cluster
def test_trust_on_ray_is_the_same_as_in_process(tmp_path, one_thread):
    pytest.importorskip("ray")
    (tmp_path / "tiny.py").write_text(CLI_MODEL_SRC)
    (tmp_path / "judge.py").write_text(JUDGE_SRC)
    photos = _photos(tmp_path / "photos")
    common = ["catalogue", f"{tmp_path / 'tiny.py'}:net", "--layers", "1", "3", "--size", "32",
              "--steps", "4", "--no-progress", "--images", str(photos), "--top-k", "24",
              "--concepts", "3", "--trust", "--judge",
              f"{tmp_path / 'judge.py'}:judge"]  # fmt: skip
    a, b = tmp_path / "a", tmp_path / "b"
    assert main([*common, "--out", str(a)]) == 0
    assert main([*common, "--out", str(b), "--ray", "--workers", "2"]) == 0
    for layer in ("1", "3"):
        for name in (TRUST, CONCEPT_TRUST):
            here, there = (f / layer / name for f in (a, b))
            assert here.read_bytes() == there.read_bytes(), (layer, name)
    assert b'min_references": true' in (b / "3" / TRUST).read_bytes()


def test_ray_trust_refuses_the_model_as_judge(tmp_path):
    """Checked on the driver before any task is sent (no Ray needed to see it)."""
    from midnite.jobs.ray import model_spec
    from midnite.jobs.trust import ray_trust

    (tmp_path / "tiny.py").write_text(CLI_MODEL_SRC)
    name = f"{tmp_path / 'tiny.py'}:net"
    executor = SimpleNamespace(model=model_spec(name)[0])
    with pytest.raises(UsageError, match="judge must be a different network"):
        ray_trust(executor, tmp_path, ["3"], name)
