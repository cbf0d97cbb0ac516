"""`likeme serve`: the official `openai` client against a real server on a free local port, every error
case, the API key, the queue under load, a client that goes away, and the chat page in headless Chromium."""

import base64
import json
import logging
import socket
import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest
from tiny import CHROMIUM_ARGS, chromium, likeme_cli

from likeme.errors import LikemeError
from likeme.serve import check_host, is_loopback
from likeme.serve.app import create_app, load_models
from likeme.serve.limits import Limits

openai = pytest.importorskip("openai")
try:  # the HTTP client the openai package is built on (httpx2 in its 3.x releases, httpx before)
    import httpx2 as httpx
except ImportError:
    import httpx
jsonschema = pytest.importorskip("jsonschema")

SCHEMA = {"type": "object", "properties": {"mood": {"enum": ["happy", "sad"]}, "ok": {"type": "boolean"},
                                           "stars": {"type": "integer", "minimum": 1, "maximum": 5}},
          "required": ["mood", "ok", "stars"], "additionalProperties": False}


@pytest.fixture(scope="module")
def runs(_tiny_models, tmp_path_factory):
    """A voice of Ana, an embedder of Ana with a likeness score, and an author classifier, all tiny."""
    from conftest import _copy
    from tiny import three_person_store

    from likeme.recipes.classify import ClassifyConfig, train_classifier
    from likeme.recipes.embed import EmbedConfig, train_embedder
    from likeme.recipes.voice import VoiceConfig, train_voice

    tmp = tmp_path_factory.mktemp("serve")
    three_person_store(tmp / "s.db").close()
    voice = train_voice(VoiceConfig(name="Ana", db=str(tmp / "s.db"), base=str(_copy(_tiny_models, "lm", tmp)),
                                    learn_from="me", max_steps=2, batch_size=4, grad_accum=1, eval_every=2, out=str(tmp / "ana-voice")), progress=False)
    embedder = train_embedder(EmbedConfig(name="Ana", db=str(tmp / "s.db"), base=str(_copy(_tiny_models, "st", tmp)),
                                          max_steps=4, batch_size=8, eval_every=4, out=str(tmp / "ana-embedder")),
                              progress=False)
    clf = train_classifier(ClassifyConfig(label_by="author", db=str(tmp / "s.db"), base=str(_copy(_tiny_models, "lm", tmp / "c")),
                                          batch_size=4, max_steps=2, min_messages=1, out=str(tmp / "authors")),
                           progress=False)
    return {"voice": voice, "embedder": embedder, "classifier": clf}


@pytest.fixture(scope="module")
def served(runs):
    return load_models([str(runs["voice"]), str(runs["embedder"]), str(runs["classifier"])])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(served, **options):
    """A uvicorn server on a free port in a thread of this process; yields its base URL."""
    import uvicorn

    app = create_app(served, **options)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started:
        assert time.time() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{srv.config.port}", app
    finally:
        srv.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def url(served):
    with server(served, limits=Limits(max_tokens=64, max_n=3, max_body_bytes=20_000)) as (base, _):
        yield base


@pytest.fixture
def client(url):
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)


def hi(**kw):
    return {"model": "ana-voice", "messages": [{"role": "user", "content": "hey, are you coming tonight?"}], **kw}


# -- the API through the official client -------------------------------------------------------------


def test_models_lists_each_run_by_its_folder(client):
    models = {m.id: m for m in client.models.list().data}
    assert set(models) == {"ana-voice", "ana-embedder", "authors"}
    assert models["ana-voice"].likeme["as"] == "Ana" and models["ana-voice"].likeme["kind"] == "voice"
    assert models["authors"].likeme["kind"] == "classifier" and "Ana" in models["authors"].likeme["labels"]


def test_chat_plain_streamed_and_n(client, served):
    plain = client.chat.completions.create(**hi(seed=3, max_tokens=12))
    choice = plain.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    assert plain.usage.completion_tokens >= 1 and plain.usage.prompt_tokens > 5
    assert plain.id.startswith("chatcmpl-") and plain.model == "ana-voice"
    # the same reply as the library gives for the same chat and seed (prompt built by the same code)
    voice = served["ana-voice"].obj
    assert choice.message.content == str(voice.reply(["hey, are you coming tonight?"], seed=3, max_new_tokens=12))

    chunks = list(client.chat.completions.create(**hi(seed=3, max_tokens=12), stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == choice.message.content  # streamed pieces join to the plain reply
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == choice.finish_reason
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens

    two = client.chat.completions.create(**hi(n=2, seed=1, max_tokens=12))
    assert [c.index for c in two.choices] == [0, 1]
    streamed_two = list(client.chat.completions.create(**hi(n=2, seed=1, max_tokens=12), stream=True))
    assert {c.choices[0].index for c in streamed_two if c.choices} == {0, 1}


def test_group_chat_names_and_system(client, served):
    voice = served["ana-voice"].obj
    messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "name": "Sam", "content": "hi"},
                {"role": "assistant", "content": "yo"}, {"role": "user", "name": "Bo", "content": "cake?"}]
    got = client.chat.completions.create(model="ana-voice", messages=messages, temperature=0, max_tokens=10)
    want = voice.reply([("Sam", "hi"), ("Ana", "yo"), ("Bo", "cake?")], system="Answer briefly.", do_sample=False,
                       max_new_tokens=10)
    assert got.choices[0].message.content == str(want)
    prompt = voice.tokenizer.decode(voice.prompt_ids([("Sam", "hi"), ("Ana", "yo"), ("Bo", "cake?")],
                                                     system="Answer briefly."))
    assert "Sam: hi" in prompt and "Bo: cake?" in prompt and "Answer briefly." in prompt  # names, as in training


def test_json_schema_reply_parses_and_validates(client):
    for seed in range(3):
        r = client.chat.completions.create(**hi(seed=seed, max_tokens=64), response_format={
            "type": "json_schema", "json_schema": {"name": "mood", "schema": SCHEMA, "strict": True}})
        jsonschema.validate(json.loads(r.choices[0].message.content), SCHEMA)
        assert r.choices[0].finish_reason == "stop"
    streamed = client.chat.completions.create(**hi(seed=0, max_tokens=64), stream=True, response_format={
        "type": "json_schema", "json_schema": {"name": "mood", "schema": SCHEMA}})
    jsonschema.validate(json.loads("".join(c.choices[0].delta.content or "" for c in streamed if c.choices)), SCHEMA)
    obj = client.chat.completions.create(**hi(seed=1, max_tokens=64), response_format={"type": "json_object"})
    if obj.choices[0].finish_reason == "stop":  # a random tiny model may write a long object: cut at 64
        assert isinstance(json.loads(obj.choices[0].message.content), dict)
    else:
        assert obj.choices[0].message.content.startswith("{")


def test_stop_strings(client):
    free = client.chat.completions.create(**hi(seed=5, max_tokens=30)).choices[0].message.content
    assert len(free) > 2
    stop = free[1:3]
    cut = client.chat.completions.create(**hi(seed=5, max_tokens=30, stop=[stop])).choices[0]
    assert cut.message.content == free[: free.index(stop)] and cut.finish_reason == "stop"


def test_completions_embeddings_classify_likeness(client, url, served):
    c = client.completions.create(model="ana-voice", prompt="Sam: are you up?\nAna:", max_tokens=8, seed=2)
    assert c.choices[0].text == str(served["ana-voice"].obj.generate("Sam: are you up?\nAna:", max_new_tokens=8,
                                                                     seed=2))
    e = client.embeddings.create(model="ana-embedder", input=["see you soon", "who won?"])
    vecs = np.array([d.embedding for d in e.data])
    assert vecs.shape[0] == 2 and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-4)
    raw = httpx.post(url + "/v1/embeddings", json={"model": "ana-embedder", "input": "see you soon",
                                                  "encoding_format": "base64"}).json()
    assert np.allclose(np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), np.float32), vecs[0], atol=1e-6)
    got = httpx.post(url + "/v1/classify", json={"model": "authors", "input": ["ok see you :)", "hi"]}).json()
    want = served["authors"].obj.predict(["ok see you :)", "hi"])
    assert [d["label"] for d in got["data"]] == [w[0] for w in want]
    assert abs(sum(got["data"][0]["probabilities"].values()) - 1) < 1e-4
    like = httpx.post(url + "/v1/likeness", json={"model": "ana-embedder", "input": ["ok see you :)"]}).json()
    assert like["as"] == "Ana" and 0 <= like["data"][0]["score"] <= 1
    assert like["data"][0]["score"] == pytest.approx(served["ana-embedder"].obj.score(["ok see you :)"])[0])


# -- errors: 4xx with OpenAI's body, and the server keeps serving --------------------------------------


@pytest.mark.parametrize("body, status, param", [
    ("{not json", 400, None),
    ({"model": "nobody", "messages": [{"role": "user", "content": "hi"}]}, 404, "model"),
    (hi(temperature=5), 400, "temperature"),
    (hi(max_tokens=10_000), 400, "max_tokens"),
    (hi(n=9), 400, "n"),
    (hi(n=2, temperature=0), 400, "n"),
    (hi(stop=["a", "b", "c", "d", "e"]), 400, "stop"),
    ({"model": "ana-voice", "messages": []}, 400, "messages"),
    ({"model": "ana-voice"}, 400, "messages"),
    (hi(messages=[{"role": "robot", "content": "hi"}]), 400, "messages.0.role"),
    (hi(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"a": {"type": "frobnicate"}}}}}), 400, "response_format"),
    (hi(response_format={"type": "xml"}), 400, "response_format.type"),
    ({"model": "authors", "messages": [{"role": "user", "content": "hi"}]}, 400, "model"),
    ({"model": "ana-voice", "input": "hi"}, 400, "model"),  # /v1/classify below, with a voice
    (hi(messages=[{"role": "user", "content": "x" * 30_000}]), 413, None),
])
def test_bad_requests_get_a_4xx_with_an_openai_error(url, body, status, param):
    path = "/v1/classify" if body == {"model": "ana-voice", "input": "hi"} else "/v1/chat/completions"
    kw = {"content": body} if isinstance(body, str) else {"json": body}
    r = httpx.post(url + path, headers={"Content-Type": "application/json"}, **kw)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"] and "Traceback" not in r.text and err["type"]
    if param:
        assert err["param"] == param
    assert httpx.get(url + "/health").json()["status"] == "ok"  # still serving


def test_chunked_bodies_and_long_prompts_are_bounded(served):
    with server(served, limits=Limits(max_body_bytes=2_000, max_prompt_tokens=120)) as (base, _):
        def chunks():  # no Content-Length: the size is only known as it arrives
            yield b'{"model": "ana-voice", "messages": [{"role": "user", "content": "'
            for _ in range(100):
                yield b"x" * 100
            yield b'"}]}'

        r = httpx.post(base + "/v1/chat/completions", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
        long = httpx.post(base + "/v1/chat/completions", json=hi(max_tokens=8, messages=[{"role": "user", "content": "hi " * 30}]))
        assert long.status_code == 400 and "at most 120" in long.json()["error"]["message"]
        assert httpx.post(base + "/v1/chat/completions", json=hi(max_tokens=3)).status_code == 200


def test_client_sees_errors_as_openai_exceptions(client, url):
    with pytest.raises(openai.NotFoundError, match="no model 'nobody'"):
        client.chat.completions.create(model="nobody", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="at most 64"):
        client.chat.completions.create(**hi(max_tokens=65))
    missing = httpx.get(url + "/v1/nowhere")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"


def test_api_key(served):
    with server(served, api_key="s3cret") as (base, _):
        assert httpx.get(base + "/v1/models").status_code == 401
        bad = httpx.get(base + "/v1/models", headers={"Authorization": "Bearer wrong"})
        assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=base + "/v1", api_key="wrong", max_retries=0).models.list()
        ok = openai.OpenAI(base_url=base + "/v1", api_key="s3cret", max_retries=0)
        assert len(ok.models.list().data) == 3
        assert httpx.get(base + "/health").status_code == 200  # no key needed to see it is up
        assert httpx.get(base + "/").status_code == 200  # the page asks for the key itself


def test_only_loopback_without_a_key(served, monkeypatch):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")
    with pytest.raises(LikemeError, match="API key"):
        check_host("0.0.0.0", None)
    check_host("0.0.0.0", "k")
    monkeypatch.delenv("LIKEME_API_KEY", raising=False)
    p = likeme_cli("serve", "nowhere-run", "--host", "0.0.0.0")
    assert p.returncode == 1 and "--api-key" in p.stderr and "Traceback" not in p.stderr


# -- load: a bounded queue, fast refusals, a client that leaves frees its slot -----------------------


def test_overload_is_refused_fast_and_a_gone_client_frees_its_slot(served):
    limits = Limits(max_concurrent=1, max_queue=0, max_tokens=64)
    with server(served, limits=limits) as (base, app):
        long = hi(max_tokens=64, stream=True, seed=0)
        with httpx.Client(timeout=30) as c:
            with c.stream("POST", base + "/v1/chat/completions", json=long) as stream:
                lines = stream.iter_lines()
                assert next(lines).startswith("data: ")  # generating: the only slot is taken
                t = time.perf_counter()
                busy = httpx.post(base + "/v1/chat/completions", json=hi(max_tokens=4))
                assert busy.status_code == 429 and time.perf_counter() - t < 2
                assert busy.json()["error"]["code"] == "server_busy" and busy.headers["retry-after"] == "1"
            # the stream is closed mid-reply: its generation stops and the slot comes back
        deadline = time.time() + 20
        while httpx.get(base + "/health").json()["generating"]:
            assert time.time() < deadline, "the slot of a client that left was never freed"
            time.sleep(0.05)
        assert httpx.post(base + "/v1/chat/completions", json=hi(max_tokens=4)).status_code == 200


def test_many_clients_at_once_all_answered_or_refused(served):
    from concurrent.futures import ThreadPoolExecutor

    with server(served, limits=Limits(max_concurrent=2, max_queue=2, max_tokens=8)) as (base, _):
        with ThreadPoolExecutor(12) as pool:
            codes = list(pool.map(lambda i: httpx.post(base + "/v1/chat/completions", json=hi(max_tokens=8, seed=i),
                                                        timeout=60).status_code, range(12)))
        assert set(codes) <= {200, 429} and codes.count(200) >= 4
        assert httpx.get(base + "/health").json() == {"status": "ok", "generating": 0, "waiting": 0}


def test_logs_hold_no_message_text_unless_asked(served, caplog):
    secret = "my-pin-is-4921"
    body = hi(max_tokens=3, messages=[{"role": "user", "content": secret}])
    for log_messages in (False, True):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="likeme.serve"):
            with server(served, log_messages=log_messages) as (base, _):
                assert httpx.post(base + "/v1/chat/completions", json=body).status_code == 200
        assert (secret in caplog.text) == log_messages
        assert "chat.completion ana-voice" in caplog.text


# -- the page in a real headless browser ----------------------------------------------------------------


@pytest.mark.skipif(chromium() is None, reason="no Chromium installed (Debian: apt-get install chromium)")
def test_chat_page_streams_a_reply_in_chromium(url, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 700})  # a phone-sized screen
            page.goto(url + "/")
            page.wait_for_selector("#model option", state="attached")
            assert page.locator("#model").input_value() == "ana-voice"
            page.fill("#max-tokens", "16")
            page.fill("#input", "are you coming tonight?")
            page.evaluate("""() => { window.pieces = 0; new MutationObserver(() => window.pieces++)
                .observe(document.querySelector('#log'), {subtree: true, childList: true, characterData: true}); }""")
            page.click("#send")
            page.wait_for_function("() => document.querySelectorAll('.msg.assistant').length === 1 && "
                                   "!document.querySelector('#send').disabled", timeout=30_000)
            assert page.locator(".msg.user .text").inner_text() == "are you coming tonight?"
            first = page.locator(".msg.assistant .text").inner_text()
            assert first.strip()
            assert page.evaluate("window.pieces") >= 4  # two bubbles, then the reply grew piece by piece
            page.click("#regenerate")
            page.wait_for_function("() => !document.querySelector('#send').disabled", timeout=30_000)
            assert page.locator(".msg.assistant").count() == 1
            page.click("#clear")
            assert page.locator(".msg").count() == 0
            assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
            page.screenshot(path=str(tmp_path / "page.png"))
        finally:
            browser.close()
