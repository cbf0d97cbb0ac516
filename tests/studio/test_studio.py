"""`likeme studio`: a real server on a free local port, driven by headless Chromium from an export to a voice
you can talk to (each job the real CLI in a child process), bad input through the page, and its security."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from tiny import CHROMIUM_ARGS, chromium, whatsapp_chat

try:  # the HTTP client the openai package is built on (httpx2 in its 3.x releases, httpx before)
    import httpx2 as httpx
except ImportError:
    import httpx

from likeme.studio.app import create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def studio(**options):
    """The studio on a free port in a thread of this process (its jobs are child processes); yields its URL."""
    import uvicorn

    app = create_app(**options)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started:
        assert time.time() < deadline, "the studio did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{srv.config.port}", app
    finally:
        app.state.jobs.close(wait_s=20)
        srv.should_exit = True
        thread.join(10)


def shots() -> Path | None:
    """Where the page screenshots go: LIKEME_SCREENSHOTS=docs/studio makes the README's; else nowhere."""
    folder = os.environ.get("LIKEME_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder) if folder else None


def snap(page, name: str) -> None:
    if shots():
        page.screenshot(path=str(shots() / f"{name}.png"), full_page=True)


def checkpoint_of(run: Path) -> int | None:
    found = [int(p.name.split("-")[-1]) for p in run.glob("**/checkpoints/checkpoint-*")  # a blend's: in RUN/parts/
             if (p / "trainer_state.json").is_file()]
    return max(found) if found else None


def wait_for(fn, timeout: float, what: str):
    deadline = time.time() + timeout
    while True:
        value = fn()
        if value:
            return value
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def expect_text(page, selector: str, start: str, timeout: float = 120) -> str:
    """Wait until `selector`'s text starts with `start`; on a timeout, say what it was."""
    deadline, text = time.time() + timeout, ""
    while time.time() < deadline:
        text = page.inner_text(selector)
        if text.startswith(start):
            return text
        page.wait_for_timeout(200)
    raise AssertionError(f"{selector}: {text!r}, waiting for {start!r}")


@pytest.mark.skipif(chromium() is None, reason="no Chromium installed (Debian: apt-get install chromium)")
def test_from_an_export_to_a_voice_in_the_browser(tiny_lm, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    export = whatsapp_chat(tmp_path / "WhatsApp Chat with Ana.txt", 30, datetime(2024, 1, 1, 18))
    corrupt = tmp_path / "broken.zip"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    home = Path(os.environ["LIKEME_HOME"])
    with studio(allow=[tmp_path]) as (url, app), sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 760}, accept_downloads=True)
        page.set_default_timeout(120_000)
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(url) else route.abort())
        page.goto(url + "/")

        # -- Data: two exports at once, one of them corrupt: the people of the good one, the CLI's error for the other
        page.set_input_files("#files", [str(export), str(corrupt)])
        page.wait_for_selector("#ingests .ingest.done")
        page.wait_for_selector("#ingests .ingest.failed")
        assert "180 new messages" in page.inner_text("#ingests .ingest.done")
        assert page.inner_text("#ingests .ingest.failed").startswith("broken.zip")
        assert "Error: " in page.inner_text("#ingests .ingest.failed")
        page.wait_for_function("() => document.querySelectorAll('#people tr').length === 3")
        rows = [r.split("\t") for r in page.inner_text("#people").strip().splitlines()]
        assert [r[:5] for r in rows] == [["Ana", "90", "1", "2024-01-01", "2024-01-30"], ["Sam", "60", "1", "2024-01-01", "2024-01-30"],
                                         ["Bo", "30", "1", "2024-01-01", "2024-01-30"]]
        page.fill("#path", "/etc/hostname")  # outside the allowed places
        page.click("#add-path")
        page.wait_for_function("() => document.querySelector('#ingests .ingest').classList.contains('failed')")
        assert "outside the places this studio may read" in page.inner_text("#ingests .ingest")
        snap(page, "data")

        # -- Train: an unknown person, then a voice of Ana for 3 steps with its loss curve
        page.click("#tab-train")
        page.wait_for_selector("#field-base")
        assert page.input_value("#recipe") == "voice" and page.is_visible("#minutes")
        page.fill("#person", "Nobody")
        page.click("#start")
        page.wait_for_selector("#train-msg.error")
        assert "no messages by 'Nobody' in the store" in page.inner_text("#train-msg")

        page.fill("#person", "Ana")
        page.fill("#field-base", str(tiny_lm))
        page.fill("#field-max_steps", "3")
        page.fill("#field-batch_size", "4")
        page.click("#more summary")
        page.fill("#field-eval_every", "2")
        page.click("#start")
        expect_text(page, "#train-msg", "Job 1 started")
        page.wait_for_function("() => Number(document.querySelector('#chart').dataset.points) >= 1")  # drawn as it grows
        page.wait_for_function("() => document.querySelector('#live-status').textContent === 'done'")
        assert page.get_attribute("#chart", "data-points") == "3"
        assert len(page.get_attribute("#chart polyline", "points").split()) == 3
        assert page.inner_text("#steps") == "3 / 3" and float(page.inner_text("#tokens").replace(",", "")) > 0
        page.wait_for_selector("#job-1 .state.done")  # the process ends just after its run says done
        snap(page, "train")

        # -- a second job while one runs is queued (and taken off the queue); the same run twice is refused
        page.fill("#run-name", "ana-long")
        page.fill("#field-max_steps", "400")
        page.fill("#field-eval_every", "4")
        page.click("#start")
        expect_text(page, "#train-msg", "Job 2 started")
        page.fill("#run-name", "ana-next")
        page.click("#start")
        expect_text(page, "#train-msg", "Queued behind job 2")
        page.click("#job-3 button")
        page.wait_for_selector("#job-3 .state.stopped")
        page.fill("#run-name", "ana-long")
        page.click("#start")
        page.wait_for_selector("#train-msg.error")
        assert "ana-long" in page.inner_text("#train-msg")

        # -- killed mid-training: interrupted on the Runs page; Resume goes on from its checkpoint; Stop keeps one
        long = home / "runs" / "ana-long"
        first = wait_for(lambda: checkpoint_of(long), 120, "a checkpoint of ana-long")
        pid = httpx.get(url + "/api/jobs").json()["jobs"][1]["pid"]
        os.kill(pid, signal.SIGKILL)
        page.goto(url + "/#runs/ana-long")
        expect_text(page, ".run-item.on .badge", "interrupted", timeout=30)
        page.click("#run-detail .resume")
        expect_text(page, "#runs-msg", "Job 4 started")
        steps = lambda: [r["step"] for r in map(__import__("json").loads, (long / "metrics.jsonl").read_text().splitlines())
                         if "loss" in r]
        wait_for(lambda: max(steps()) > first + 2, 120, "resumed steps")
        assert steps() == list(range(1, len(steps()) + 1))  # each step once: the rows after the checkpoint were dropped
        page.click("#tab-train")
        page.wait_for_selector("#job-4 button")
        page.click("#job-4 button")  # Stop: SIGINT, as Ctrl-C
        page.wait_for_selector("#job-4 .state.stopped")
        assert checkpoint_of(long) > first

        # -- Runs: the voice's card, figures and plot; its GGUF for download; chat with it
        page.goto(url + "/#runs/ana-voice")
        page.wait_for_selector("#run-detail .figures")
        assert "ppl" in page.inner_text("#run-detail .figures") and "Ana 90" in page.inner_text("#run-detail")
        page.wait_for_function("() => [...document.querySelectorAll('#run-detail img')].some(i => i.naturalWidth > 200)")
        page.select_option("#run-detail .export-to", "gguf")
        page.click("#run-detail .export")
        page.wait_for_selector("#run-detail a.file")
        with page.expect_download() as download:
            page.click("#run-detail a.file")
        saved = download.value.path()
        assert download.value.suggested_filename.endswith(".gguf") and Path(saved).read_bytes()[:4] == b"GGUF"
        assert "ana-long" in page.inner_text("#run-list") and "interrupted" in page.inner_text("#run-list")
        page.fill("#run-detail .report-data", str(export))  # the report, made on demand by likeme report
        page.click("#run-detail .report")
        expect_text(page, "#runs-msg", "report of ana-voice: running")  # its progress while it is made
        page.wait_for_selector("#run-detail a.open-report", timeout=300_000)  # a 2-core machine under load: minutes
        assert page.inner_text("#runs-msg").startswith("report of ana-voice: done")
        with page.expect_popup() as popup:
            page.click("#run-detail a.open-report")
        assert popup.value.title() == "likeme report: Ana"
        popup.value.close()
        snap(page, "runs")

        assert app.state.served == {}  # every page viewed so far, and no model loaded for it
        page.click("#run-detail .chat")
        page.wait_for_url(url + "/chat/")
        page.wait_for_selector("#model option", state="attached")
        assert page.input_value("#model") == "ana-voice"
        page.fill("#max-tokens", "12")
        page.fill("#input", "pizza tonight?")
        page.click("#send")
        page.wait_for_function("() => document.querySelectorAll('.msg.assistant').length === 1 && "
                               "!document.querySelector('#send').disabled")
        assert page.inner_text(".msg.user .text") == "pizza tonight?"
        snap(page, "chat")
        page.click("#back")  # serve's chat page, served at /chat/, links back to the studio
        page.wait_for_selector("#runs .run-item")

        # -- forget a person: the confirmation lists the runs trained on them
        page.goto(url + "/#data")
        page.wait_for_selector("#people tr")
        page.click("#people tr:nth-child(3) .forget")  # Bo
        page.wait_for_selector("#confirm[open]")
        assert "ana-voice" in page.inner_text("#confirm-runs")
        page.click("#confirm-yes")
        page.wait_for_function("() => document.querySelectorAll('#people tr').length === 2")
        assert "Deleted 30 messages by Bo" in page.inner_text("#data-msg")
        browser.close()
        assert httpx.get(url + "/health").json()["status"] == "ok"  # still serving after every bad request


def test_security_as_likeme_serve(tmp_path):
    """A key on every /api and chat request when set; uploads over the limit a 413 that leaves nothing; no
    path out of the allowed places or out of a run folder; the studio still serving after each."""
    (tmp_path / "inside.txt").write_text("x")
    with studio(api_key="sesame", allow=[tmp_path], max_upload_bytes=1000) as (url, _):
        c = httpx.Client(base_url=url, timeout=30)
        assert c.get("/").status_code == 200  # the page itself holds nothing
        assert c.get("/api/people").status_code == 401 and c.get("/chat/v1/models").status_code == 401
        key = {"Authorization": "Bearer sesame"}
        assert c.get("/api/people", headers=key).json() == {"people": [], "messages": 0}
        assert c.get("/chat/v1/models", headers=key).json()["data"] == []
        r = c.put("/api/uploads?name=big.zip", content=b"x" * 2000, headers=key)
        assert r.status_code == 413 and "upload limit" in r.json()["error"]["message"]
        r = c.put("/api/uploads?name=big.zip", content=iter([b"x" * 600, b"x" * 600]), headers=key)  # chunked
        assert r.status_code == 413
        uploads = Path(os.environ["LIKEME_HOME"]) / "uploads"
        assert not uploads.exists() or not any(uploads.iterdir())
        for path in ("/etc/passwd", str(tmp_path / ".." / ".." / "etc"), "relative/path"):
            r = c.post("/api/ingest", json={"path": path}, headers=key)
            assert r.status_code in (400, 403), path
        r = c.post("/api/train", json={"recipe": "voice", "person": "Ana", "run": "../escape"}, headers=key)
        assert r.status_code == 400
        r = c.post("/api/train", json={"recipe": "tokenizer"}, headers=key)
        assert r.status_code == 400 and "no recipe 'tokenizer'" in r.json()["error"]["message"]
        assert c.get("/api/runs/..%2Fx/files/run.yaml", headers=key).status_code in (400, 404)
        assert c.get("/health").json()["status"] == "ok"


def test_the_train_form_is_the_recipes_config():
    from likeme.cli.train import RECIPES
    from likeme.studio import forms
    from likeme.studio.places import Places

    form = forms.form("voice")
    assert form["person"] and form["minutes"] and not forms.form("classifier")["person"]
    names = [f["name"] for f in form["fields"]]
    config = RECIPES["voice"][0]
    assert set(names) == set(config.__dataclass_fields__) - forms.SET_BY_PAGE
    lora = next(f for f in form["fields"] if f["name"] == "lora_r")
    assert lora == {"name": "lora_r", "flag": "--lora-r", "type": "int", "default": 32, "choices": None, "main": False,
                    "help": config.__dataclass_fields__["lora_r"].metadata["help"]}
    assert [f["name"] for f in form["fields"] if f["main"]][:3] == ["epochs", "max_steps", "lr"]
    args = forms.train_args("classifier", {"cache": False, "epochs": "2"}, person=None,
                            out="/r", db=None, places=Places(), minutes=None)
    assert args == ["train", "classifier", "--out", "/r", "--label-by", "author", "--no-cache", "--epochs", "2", "-q"]
    with pytest.raises(Exception, match="not a number"):
        forms.train_args("voice", {"lr": "fast"}, person="Ana", out="/r", db=None, places=Places())


def test_starts_without_torch_and_in_under_two_seconds(tmp_path):
    """What `likeme studio` imports before it listens: no torch, no transformers, no model."""
    code = ("import sys, time; t = time.perf_counter(); from likeme.cli.main import cli; from likeme.studio.app import create_app; "
            "app = create_app(); app.state.jobs.close(); "
            "print(time.perf_counter() - t, 'torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "LIKEME_HOME": str(tmp_path)}).stdout.split()
    assert out[1:] == ["False", "False"]
    assert float(out[0]) < 2.0


def test_beyond_this_machine_only_with_a_key():
    from tiny import likeme_cli

    p = likeme_cli("studio", "--host", "0.0.0.0")
    assert p.returncode == 1 and p.stderr.startswith("Error: --host 0.0.0.0 lets other machines talk to your models")
    assert "--allow FOLDER" in likeme_cli("studio", "--help").stdout


@pytest.mark.parametrize("recipe", ["voice", "embedder", "classifier", "reward", "prefer"])
def test_every_setting_on_the_form_is_a_flag_the_cli_takes(recipe, tmp_path):
    """Each recipe's form, every field set (to its default, or a value of its type), parses as the real
    `likeme train RECIPE` command's arguments, and the values arrive in the config's fields."""
    from likeme.cli.train import train
    from likeme.studio import forms
    from likeme.studio.places import Places

    fields = forms.form(recipe)["fields"]
    sample = {"int": "3", "float": "0.5", "str": "x"}
    values = {f["name"]: (not f["default"] if f["type"] == "bool" else f["choices"][-1] if f["choices"]
                          else sample[f["type"]]) for f in fields}
    args = forms.train_args(recipe, values, person="Ana", out=str(tmp_path / "r"), db=str(tmp_path / "s.db"),
                            places=Places(), minutes=2 if forms.form(recipe)["minutes"] else None)
    command = train.commands[recipe]
    ctx = command.make_context(recipe, args[2:])
    for f in fields:
        given = ctx.params[f["name"]]
        expected = values[f["name"]]
        assert given == expected or str(given) == str(expected) or given == float(expected), f["name"]
    assert ctx.params["out"] == str(tmp_path / "r")
