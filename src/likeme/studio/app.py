"""The studio's ASGI app: its page at `/`, the chat page of `likeme serve` at `/chat/`, and the API the page
calls (every /api route needs the key when the studio has one):

    GET  /api/people                     the people table (messages, chats, first and last date)
    PUT  /api/uploads?name=FILE          an export's bytes, kept under $LIKEME_HOME/uploads (size-limited)
    POST /api/ingest {"path"}            read an export (file, .zip or folder) into the store: a task
    GET  /api/ingest/{id}                the task: messages read so far, then its line or its one-line error
    GET  /api/people/{name}/runs         the runs trained on a person's messages (before forgetting them)
    POST /api/forget {"author"}          delete a person's messages everywhere
    GET  /api/recipes                    the Train page's forms (forms.py)
    POST /api/train {"recipe", "person", "run", "minutes", "values"}    a training job (jobs.py)
    GET  /api/jobs, POST /api/jobs/{id}/stop
    /api/runs...                         the Runs page (runview.py)

Errors have `likeme serve`'s body, {"error": {"message", ...}}, with a 4xx for what the page can fix.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse

from likeme.errors import LikemeError
from likeme.paths import first_line, home
from likeme.serve.errors import ApiError, add_handlers
from likeme.studio import forms
from likeme.studio.jobs import Jobs
from likeme.studio.places import Places, receive_upload
from likeme.studio.runview import run_name_for, runs_router

log = logging.getLogger("likeme.studio")
STATIC = Path(__file__).resolve().parent / "static"


class Ingests:
    """Exports being read into the store, one at a time (each file is one transaction), in worker threads."""

    def __init__(self, db):
        self.db, self.tasks, self.lock = db, [], threading.Lock()

    def start(self, path: Path) -> dict:
        task = {"id": len(self.tasks) + 1, "path": str(path), "state": "running", "messages": 0, "message": ""}
        self.tasks.append(task)
        threading.Thread(target=self._run, args=(task, path), daemon=True).start()
        return task

    def _run(self, task: dict, path: Path) -> None:
        from likeme.data.store import Store

        def progress(n: int) -> None:
            task["messages"] += n

        with self.lock:
            try:
                with Store(self.db) as store:
                    res = store.ingest_path(path, progress=progress)
            except LikemeError as e:  # the CLI's own one-line error
                task.update(state="failed", message=f"Error: {e}")
                return
            except Exception as e:
                log.exception("ingest %s", path)
                task.update(state="failed", message=f"Error: {path.name}: cannot read it ({first_line(e)})")
                return
        convs = len(res.conversations)
        task.update(state="done", message=f"{path.name}: already ingested ({res.format}), nothing to add"
                    if res.already_ingested else f"{path.name}: {res.added} new messages ({res.skipped} already stored) "
                    f"from {res.format}, {convs} conversation{'s' * (convs != 1)}")


def create_app(*, api_key: str | None = None, allow=(), db=None, max_upload_bytes: int = 500 * 2**20,
               chat_limits=None, env: dict | None = None):
    """The studio's FastAPI app. `allow`: folders besides $LIKEME_HOME and ~ whose exports and models the
    page may name; `db`: the store (default $LIKEME_HOME/likeme.db); `env`: the jobs' environment."""
    from likeme.serve.app import create_app as chat_app

    places = Places(allow)
    app = FastAPI(title="likeme studio", docs_url=None, redoc_url=None, openapi_url=None)
    served: dict = {}  # the run the chat page talks to, loaded when asked for (a page view loads no model)
    app.state.places, app.state.served, app.state.db = places, served, db
    app.state.jobs = Jobs(home() / "studio" / "jobs", env)
    app.state.chat_lock = asyncio.Lock()
    ingests = Ingests(db)
    add_handlers(app)

    @app.middleware("http")
    async def _guard(request: Request, call_next):
        if api_key is not None and request.url.path.startswith(("/api/", "/chat/v1/")):
            given = request.headers.get("authorization", "")
            token = given[7:] if given[:7].lower() == "bearer " else ""
            if not hmac.compare_digest(token.encode(), api_key.encode()):
                e = ApiError(401, "a valid API key is needed: enter it at the top of the page", code="invalid_api_key")
                return JSONResponse(e.body(), status_code=401)
        return await call_next(request)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "studio.html", media_type="text/html")

    @app.get("/health")
    async def health():
        running = app.state.jobs.running()
        return {"status": "ok", "job": running.card() if running else None}

    # -- Data --------------------------------------------------------------------------------------
    @app.get("/api/people")
    async def people():
        from likeme.data.store import Store

        def read():
            with Store(db) as store:
                return [p.__dict__ for p in store.people()], store.count()

        rows, total = await asyncio.to_thread(read)
        return {"people": rows, "messages": total}

    @app.put("/api/uploads")
    async def upload(request: Request, name: str = ""):
        path = await receive_upload(request, name, max_upload_bytes)
        return {"path": str(path), "bytes": path.stat().st_size}

    @app.post("/api/ingest")
    async def ingest(body: dict):
        path = places.check(body.get("path") or "")
        if not path.exists():
            raise ApiError(404, f"{body.get('path')}: no such file or folder", param="path")
        return ingests.start(path)

    @app.get("/api/ingest/{task_id}")
    async def ingest_task(task_id: int):
        if not 1 <= task_id <= len(ingests.tasks):
            raise ApiError(404, f"no ingest {task_id}", param="task")
        return ingests.tasks[task_id - 1]

    @app.get("/api/people/{author}/runs")
    async def trained_on(author: str):
        from likeme.runs import trained_on as runs_of

        return {"author": author, "runs": [p.name for p in await asyncio.to_thread(runs_of, author)]}

    @app.post("/api/forget")
    async def forget(body: dict):
        from likeme.data.cache import clear
        from likeme.data.store import Store
        from likeme.runs import trained_on as runs_of
        from likeme.use.index import prune

        author = body.get("author") or ""

        def run():
            with Store(db) as store:
                if author not in {p.author for p in store.people()}:
                    raise ApiError(404, f"no messages by {author!r} in the store", param="author")
                n = store.forget(author)
                path = store.path
            prune(db)  # their vectors leave the search indexes,
            clear(path)  # and their words the tokenized datasets (as likeme forget does)
            return n

        with ingests.lock:
            n = await asyncio.to_thread(run)
        trained = [p.name for p in runs_of(author)]
        return {"author": author, "deleted": n, "runs": trained,
                "message": f"Deleted {n} messages by {author}; later ingests will skip them."
                + (f" {len(trained)} run(s) were trained on them: train them again without, or delete them." if trained else "")}

    # -- Train -------------------------------------------------------------------------------------
    @app.get("/api/recipes")
    async def recipes():
        return {"recipes": forms.forms()}

    @app.post("/api/train")
    async def train(body: dict):
        from likeme.data.store import Store

        recipe = body.get("recipe") or ""
        form = forms.form(recipe)
        person = (body.get("person") or "").strip() or None
        if (body.get("run") or "").strip():
            places.run(body["run"].strip(), must_exist=False)  # a bad name is refused before anything is read
        if form["person"]:
            with Store(db) as store:
                known = {p.author for p in store.people()}
            if not person:
                raise ApiError(400, "pick whose messages to learn from", param="person")
            if person not in known:
                raise ApiError(404, f"no messages by {person!r} in the store: pick someone from the people table "
                                    "(likeme people)", param="person", code="unknown_person")
        name = (body.get("run") or "").strip() or run_name_for(recipe, person)
        out = places.run(name, must_exist=False)
        if out.exists():
            raise ApiError(409, f"runs/{name} exists already: give the run another name, or resume it from Runs",
                           param="run", code="run_exists")
        minutes = body.get("minutes")
        try:
            minutes = float(minutes) if minutes not in (None, "") else None
        except (TypeError, ValueError):
            raise ApiError(400, f"the time budget is a number of minutes, not {minutes!r}", param="minutes") from None
        args = forms.train_args(recipe, body.get("values") or {}, person=person, out=str(out), db=db, places=places,
                                minutes=minutes)
        return queued(app.state.jobs.submit(args, title=f"train {recipe}" + (f" as {person}" if person else ""),
                                            run=name))

    def queued(job) -> dict:
        ahead = app.state.jobs.ahead_of(job)
        message = (f"Queued behind job {ahead[0].id} ({ahead[0].title}, {ahead[0].state}): one job runs at a "
                   f"time; this one starts when {'those end' if len(ahead) > 1 else 'it ends'}." if ahead else
                   f"Job {job.id} started: {job.title}.")
        return {"job": job.card(), "ahead": [j.id for j in ahead], "message": message}

    app.state.queued = queued

    @app.get("/api/jobs")
    async def jobs():
        return {"jobs": [j.card() for j in app.state.jobs.jobs]}

    @app.post("/api/jobs/{job_id}/stop")
    async def stop(job_id: int):
        return {"job": app.state.jobs.stop(job_id).card()}

    app.include_router(runs_router(app))
    app.mount("/chat", chat_app(served, api_key=api_key, limits=chat_limits))  # serve's chat page and API
    return app
