"""``midnite serve``'s application through Starlette's TestClient on a tiny model: the job
lifecycle, cancel, the queue's 429, bad requests, path traversal, the token, uploads."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("httpx")
import warnings

with warnings.catch_warnings():  # starlette 1.x prefers httpx2; httpx is what the extra declares
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from midnite.engine import layers
from midnite.serve import JobManager, Limits, Request, create_app, fires, resolve
from midnite.serve.app import MAX_UPLOAD

from conftest import CLI_MODEL_SRC, tiny_cnn

BASE = "http://127.0.0.1"


def shapes_of(model) -> dict:
    return {i.name: tuple(i.shape) for i in layers(model, (32, 32)) if i.shape and i.calls == 1}


LIMITS = Limits(max_steps=2000, max_size=64)


def make(tmp_path: Path, *, token=None, limits=LIMITS, **kw):
    model = tiny_cnn()
    folder = tmp_path / "site"
    folder.mkdir(exist_ok=True)
    manager = JobManager(model, "tiny", folder, shapes_of(model), limits=limits)
    app = create_app(folder, manager=manager, model=model, size=32, token=token, **kw)
    return app, manager, folder


def wait(client, ident: str, states=("done", "failed", "cancelled"), timeout=60.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        state = client.get(f"/api/jobs/{ident}").json()
        if state["state"] in states:
            return state
        time.sleep(0.05)
    raise AssertionError(f"job {ident} still {state}")


def png(size=(40, 30), color=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


RENDER = {"layer": "2", "unit": 1, "view": "channel", "steps": 4, "size": 32}


def test_job_lifecycle_writes_through_the_runner(tmp_path):
    app, _manager, folder = make(tmp_path)
    with TestClient(app, base_url=BASE) as client:
        layers_ = client.get("/api/layers").json()
        two = {"name": "2", "display": "2", "shape": [6, 16, 16], "units": 6, "concepts": []}
        assert two in layers_["layers"]
        made = client.post("/api/render", json=RENDER)
        assert made.status_code == 202, made.text
        state = wait(client, made.json()["job"])
        assert state["state"] == "done" and state["step"] == 4, state
        assert state["image"] == "/2/channel_0001.png" and not state["up_to_date"]
        image = client.get(state["image"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        assert image.content == (folder / "2" / "channel_0001.png").read_bytes()
        record = json.loads((folder / "2" / "channel_0001.json").read_text())
        assert record["key"]["batch_units"] == [1] and record["key"]["steps"] == 4
        # the event stream: one progress per step, snapshots, then done with the image
        text = client.get(f"/api/jobs/{state['job']}/events").text
        events = [b.split("\n") for b in text.strip().split("\n\n")]
        kinds = [e[0].removeprefix("event: ") for e in events]
        assert kinds == ["progress"] * 4 + ["done"]
        last = json.loads(events[-1][1].removeprefix("data: "))
        assert last["image"] == state["image"]
        assert any("data:image/png;base64," in e[1] for e in events[:-1])
        # the site's pages were built by the runner, and the same request is up to date
        assert (folder / "index.html").is_file()
        again = wait(client, client.post("/api/render", json=RENDER).json()["job"])
        assert again["state"] == "done" and again["up_to_date"] and again["step"] == 0
        assert not list(folder.rglob("*.tmp"))


def test_cancel_stops_the_render_and_writes_nothing(tmp_path):
    app, _manager, folder = make(tmp_path)
    with TestClient(app, base_url=BASE) as client:
        ident = client.post("/api/render", json={**RENDER, "steps": 2000}).json()["job"]
        wait(client, ident, states=("running",))
        while client.get(f"/api/jobs/{ident}").json()["step"] < 2:
            time.sleep(0.01)
        gone = client.delete(f"/api/jobs/{ident}")
        assert gone.status_code == 200
        state = wait(client, ident)
        assert state["state"] == "cancelled" and state["step"] < 2000
        assert not (folder / "2" / "channel_0001.png").exists()
        assert client.delete("/api/jobs/nope").status_code == 404


def test_queue_full_answers_429_and_a_queued_job_can_be_cancelled(tmp_path):
    limits = Limits(max_jobs=1, queue=1, max_steps=5000, max_size=64)
    app, _manager, _folder = make(tmp_path, limits=limits)
    with TestClient(app, base_url=BASE) as client:
        first = client.post("/api/render", json={**RENDER, "steps": 5000}).json()["job"]
        wait(client, first, states=("running",))
        second = client.post("/api/render", json={**RENDER, "unit": 2}).json()["job"]
        full = client.post("/api/render", json={**RENDER, "unit": 3})
        assert full.status_code == 429 and "queue holds 1" in full.json()["error"]
        assert client.delete(f"/api/jobs/{second}").json()["state"] == "cancelled"
        client.delete(f"/api/jobs/{first}")
        assert wait(client, first)["state"] == "cancelled"


def test_time_limit_fails_the_job(tmp_path):
    limits = Limits(seconds=0.0, max_steps=100, max_size=64)
    app, _manager, _folder = make(tmp_path, limits=limits)
    with TestClient(app, base_url=BASE) as client:
        state = wait(client, client.post("/api/render", json=RENDER).json()["job"])
        assert state["state"] == "failed" and "time limit" in state["error"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "JSON object, got list"),
        (json.dumps({**RENDER, "layer": "3x"}).encode(), "unknown layer '3x'"),
        (json.dumps({**RENDER, "unit": 6}).encode(), "unit must be an integer from 0 to 5"),
        (json.dumps({**RENDER, "unit": True}).encode(), "unit must be an integer"),
        (json.dumps({**RENDER, "view": "x"}).encode(), "view must be one of"),
        (json.dumps({**RENDER, "view": "diversity", "layer": "6"}).encode(), "is flat"),
        (json.dumps({**RENDER, "steps": 2001}).encode(), "steps must be an integer from 1"),
        (json.dumps({**RENDER, "size": 65}).encode(), "size must be an integer from 16 to 64"),
        (json.dumps({**RENDER, "recipe": "nope"}).encode(), "unknown recipe"),
        (json.dumps({**RENDER, "init": "nope"}).encode(), "no upload of this server"),
        (json.dumps({**RENDER, "init_penalty": -1}).encode(), "init_penalty must be"),
    ],
)
def test_bad_render_requests_are_400_with_one_line(tmp_path, body, words):
    app, manager, _folder = make(tmp_path)
    with TestClient(app, base_url=BASE) as client:
        got = client.post("/api/render", content=body,
                          headers={"Content-Type": "application/json"})  # fmt: skip
        assert got.status_code == 400, got.text
        assert words in got.json()["error"] and "\n" not in got.json()["error"]
        assert not manager.jobs


def test_render_needs_json_content_type_and_same_origin(tmp_path):
    app, _manager, _folder = make(tmp_path)
    with TestClient(app, base_url=BASE) as client:
        plain = client.post("/api/render", content=json.dumps(RENDER),
                            headers={"Content-Type": "text/plain"})  # fmt: skip
        assert plain.status_code == 415
        other = client.post("/api/render", json=RENDER, headers={"Origin": "http://evil.test"})
        assert other.status_code == 403
        rebound = client.get("/api/layers", headers={"Host": "evil.test"})
        assert rebound.status_code == 421


def test_folder_files_and_path_traversal(tmp_path):
    app, _manager, folder = make(tmp_path)
    (folder / "index.html").write_text("<html><body><p>site</p></body></html>")
    (folder / "a.json").write_text("{}")
    (folder / ".midnite.lock").write_text("1")
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET")
    (folder / "out.txt").symlink_to(secret)
    (folder / "outdir").symlink_to(tmp_path)
    with TestClient(app, base_url=BASE) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "site" in page.text and 'href="/live"' in page.text  # the live link injected
        (folder / "2").mkdir()
        (folder / "2" / "0003.html").write_text("<html><body>unit</body></html>")
        unit_page = client.get("/2/0003.html").text
        assert 'href="/live?layer=2&amp;unit=3"' in unit_page
        assert client.get("/a.json").headers["content-type"] == "application/json"
        for attack in ("/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt",
                       "//" + str(secret), "/out.txt", "/outdir/secret.txt", "/.midnite.lock",
                       "/a.json%00", "/..%5csecret.txt"):  # fmt: skip
            got = client.get(attack)
            assert got.status_code in (400, 404), (attack, got.status_code)
            assert "SECRET" not in got.text
        assert resolve(folder, "/../secret.txt") is None
        assert resolve(folder, "/a.json") == (folder / "a.json").resolve()


def test_token_is_needed_for_every_request(tmp_path):
    app, _manager, folder = make(tmp_path, token="s3cret-token", loopback=False)
    (folder / "index.html").write_text("<html><body>x</body></html>")
    with TestClient(app, base_url="http://10.0.0.5") as client:
        assert client.get("/").status_code == 401
        assert client.get("/api/layers").status_code == 401
        assert client.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(
            "/api/layers", headers={"Authorization": "Bearer s3cret-token"}
        ).is_success
        first = client.get("/?token=s3cret-token")
        assert first.status_code == 200 and "HttpOnly" in first.headers["set-cookie"]
        assert client.get("/api/layers").status_code == 200  # the cookie now
        client.cookies.clear()
        assert client.get("/api/layers").status_code == 401


def test_fires_on_an_upload_and_accentuation_from_it(tmp_path):
    app, _manager, folder = make(tmp_path)
    with TestClient(app, base_url=BASE) as client:
        got = client.post("/api/fires", files={"image": ("p.png", png(), "image/png")},
                          data={"layer": "2", "top": "3"})  # fmt: skip
        assert got.status_code == 200, got.text
        found = got.json()
        assert [u["unit"] for u in found["units"]] == [
            u["unit"] for u in sorted(found["units"], key=lambda u: -u["value"])
        ]
        assert len(found["units"]) == 3 and found["units"][0]["heatmap"].startswith("data:image")
        body = {**RENDER, "init": found["upload"], "init_penalty": 1.0}
        state = wait(client, client.post("/api/render", json=body).json()["job"])
        assert state["state"] == "done", state
        record = json.loads((folder / "2" / "channel_0001.json").read_text())
        assert record["key"]["init_penalty"] == 1.0 and record["key"]["init"]


def test_upload_too_big_or_not_an_image(tmp_path):
    app, _manager, _folder = make(tmp_path)
    with TestClient(app, base_url=BASE) as client:
        big = client.post("/api/fires", files={"image": ("p.png", b"\x89PNG" + bytes(MAX_UPLOAD))},
                          data={"layer": "2"})  # fmt: skip
        assert big.status_code == 413 and "at most" in big.json()["error"]
        text = client.post("/api/fires", files={"image": ("p.png", b"hello")}, data={"layer": "2"})
        assert text.status_code == 400 and "not a JPEG or PNG" in text.json()["error"]
        nofile = client.post("/api/fires", data={"layer": "2"})
        assert nofile.status_code == 400
        layer = client.post("/api/fires", files={"image": ("p.png", png())}, data={"layer": "9"})
        assert layer.status_code == 400 and "unknown layer" in layer.json()["error"]


def test_fires_ranks_units_by_mean_activation():
    model = tiny_cnn()
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    found = fires(model, "2", image, top=6)
    with torch.no_grad():
        means = model[:3](image[None])[0].mean((1, 2))
    assert [u["unit"] for u in found] == torch.argsort(means, descending=True).tolist()
    assert found[0]["value"] == pytest.approx(float(means.max()), rel=1e-5)
    flat = fires(model, "6", image, top=2)
    assert len(flat) == 2 and flat[0]["heatmap"] is None


def test_manager_close_cancels_running_jobs(tmp_path):
    model = tiny_cnn()
    manager = JobManager(model, "tiny", tmp_path, shapes_of(model),
                         limits=Limits(max_steps=100000, max_size=64))  # fmt: skip
    job = manager.submit(Request("2", 0, "channel", 100000, 32))
    while job.step < 1:
        time.sleep(0.01)
    manager.close()
    assert job.state == "cancelled" and not any(t.is_alive() for t in manager._threads)
    assert not list(tmp_path.rglob("*.png"))
    assert threading.active_count() >= 1 and os.listdir(tmp_path) == []


def test_cli_refuses_bad_options(tmp_path, capsys):
    from midnite.cli import main
    from midnite.cli.serve import _token

    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["serve", str(tmp_path), "--token", "short"]) == 2
    assert "at least 8 characters" in capsys.readouterr().err
    assert main(["serve", str(tmp_path), "--max-jobs", "0"]) == 2
    assert main(["serve", str(tmp_path), "--port", "70000"]) == 2
    assert main(["serve", str(tmp_path), "--time-limit", "inf"]) == 2
    (tmp_path / "x.py").write_text(CLI_MODEL_SRC)
    (tmp_path / "0_channel_0000.json").write_text("{}")  # a 'midnite render' folder
    (tmp_path / "0_channel_0000.png").write_bytes(png())
    assert main(["serve", str(tmp_path), "--model", f"{tmp_path / 'x.py'}:net"]) == 2
    assert "holds the results of 'midnite render'" in capsys.readouterr().err
    capsys.readouterr()

    class Args:
        host, token = "0.0.0.0", None

    made = _token(Args)  # another host and no token: one is generated and printed
    assert made and len(made) >= 24 and made in capsys.readouterr().err
    Args.host = "127.0.0.1"
    Args.token = None
    assert _token(Args) is None


def test_live_render_into_a_catalogue_keeps_its_plan(tmp_path):
    from midnite.jobs import Settings, plan, run
    from midnite.pages.catalogue import read_plan

    app, _manager, folder = make(tmp_path)
    model = tiny_cnn()
    work = plan(model, "tiny", ["2"], {"2": (6, 16, 16)}, units=[0, 1],
                settings=Settings(size=(32, 32), steps=2))  # fmt: skip
    run(work, folder, model=model, progress=False)
    before = read_plan(folder)
    assert before[1]["2"]["planned"] == 2
    with TestClient(app, base_url=BASE) as client:
        state = wait(client, client.post("/api/render", json={**RENDER, "unit": 4}).json()["job"])
        assert state["state"] == "done"
        assert read_plan(folder) == before  # the catalogue's plan is not the live render's
        layer_page = client.get("/2/index.html").text
        assert "0004.html" in layer_page and "0001.html" in layer_page
        assert client.get("/2/0004.html").status_code == 200


def test_live_render_shows_a_catalogue_render_of_another_batching(tmp_path):
    from midnite.jobs import Settings, plan, run

    app, _manager, folder = make(tmp_path)
    model = tiny_cnn()
    work = plan(model, "tiny", ["2"], {"2": (6, 16, 16)}, units=[0, 1, 2],
                settings=Settings(size=(32, 32), steps=4, batch=8))  # fmt: skip
    run(work, folder, model=model, progress=False)
    png_file = folder / "2" / "channel_0001.png"
    before = (png_file.read_bytes(), png_file.stat().st_mtime_ns)
    with TestClient(app, base_url=BASE) as client:
        same = wait(client, client.post("/api/render", json=RENDER).json()["job"])
        assert same["state"] == "done" and same["up_to_date"] is True
        assert (png_file.read_bytes(), png_file.stat().st_mtime_ns) == before  # kept, not redone
        other = wait(client, client.post("/api/render", json={**RENDER, "steps": 6}).json()["job"])
        assert other["state"] == "done" and other["up_to_date"] is False
        assert png_file.read_bytes() != before[0]  # other settings: rendered and replaced


def test_live_render_of_a_concept_of_the_folder(tmp_path):
    from midnite.analysis import concepts as C
    from midnite.analysis import dictionary as dic
    from midnite.evaluation.superposition import (
        concept_pattern,
        planted_directions,
        superposition_images,
        superposition_net,
    )
    from midnite.jobs import concepts as J
    from midnite.store.concepts import load_concepts, save_concepts

    net = superposition_net()
    x, _ = superposition_images(120, seed=0)
    folder = tmp_path / "site"
    (folder / "mix").mkdir(parents=True)
    c = C.fit(net, "mix", x, 12, seed=0, size=32)
    save_concepts(folder / "mix" / J.DICTIONARY, c)
    manager = JobManager(net, "sup", folder, shapes_of(net), limits=LIMITS)
    app = create_app(folder, manager=manager, model=net, size=32)
    loaded = load_concepts(folder / "mix" / J.DICTIONARY, net)  # as the server loads it
    view = J.concept_views(loaded)["natural"]
    with TestClient(app, base_url=BASE) as client:
        layers = {entry["name"]: entry for entry in client.get("/api/layers").json()["layers"]}
        assert {e["view"]: e["n"] for e in layers["mix"]["concepts"]} == {
            view: 12,
            f"{view}_feature": 12,
        }
        assert layers["detect"]["concepts"] == []
        body = {"layer": "mix", "unit": 11, "view": view, "steps": 3, "size": 32}
        state = wait(client, client.post("/api/render", json=body).json()["job"])
        assert state["state"] == "done", state
        assert (folder / "mix" / f"{view}_0011.png").is_file()  # concept 11 of 6 channels
        summary = json.loads((folder / "mix" / J.SUMMARY).read_text())
        assert summary["concepts"][11]["image"] == f"{view}_0011.png"
        assert (folder / "mix" / "concept_0011.html").is_file()
        assert "concept_0011" not in client.get("/mix/index.html").text.split("Concepts")[0]
        for bad in ({**body, "unit": 12}, {**body, "layer": "detect"}):
            answer = client.post("/api/render", json=bad)
            assert answer.status_code == 400, answer.text
        page = client.get("/mix/concept_0011.html").text
        assert f"/live?layer=mix&amp;view={view}&amp;unit=11" in page
        # what fires on a photo of planted pattern 5: the concept matched to it comes first
        _, match = dic.match(planted_directions(), loaded.directions)
        pattern = (concept_pattern(5).repeat(1, 4, 4) * 255).round().to(torch.uint8)
        photo = io.BytesIO()
        Image.fromarray(pattern.permute(1, 2, 0).numpy()).save(photo, "PNG")
        got = client.post("/api/fires", files={"image": ("p.png", photo.getvalue(), "image/png")},
                          data={"layer": "mix", "top": "3"}).json()  # fmt: skip
        assert got["concept_view"] == view and len(got["concepts"]) == 3
        assert got["concepts"][0]["concept"] == int(match[5])
        assert got["concepts"][0]["heatmap"].startswith("data:image/png")
        plain = client.post("/api/fires", files={"image": ("p.png", png(), "image/png")},
                            data={"layer": "detect", "top": "2"}).json()  # fmt: skip
        assert plain["concepts"] == [] and plain["concept_view"] is None
