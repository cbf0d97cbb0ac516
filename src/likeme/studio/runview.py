"""The Runs page's routes: every run with its card, figures, plots and files; its live metrics as
server-sent events; resume, report, export (jobs), chat (the voice loaded for the chat page), delete.

    GET    /api/runs                          every run: recipe, status, created, as, figures, card, files
    GET    /api/runs/{name}/events            metrics.jsonl rows as they are written, and the run's status
    GET    /api/runs/{name}/files/{path}      a plot, an export, the report (RUN_FILES)
    POST   /api/runs/{name}/resume            likeme train RECIPE --out RUN --resume
    POST   /api/runs/{name}/report {"data"}   likeme report RUN --data EXPORT --as NAME
    POST   /api/runs/{name}/export {"to"}     likeme export RUN --to hf|gguf|ollama
    POST   /api/runs/{name}/chat              load the voice for the chat page at /chat/
    DELETE /api/runs/{name}

A run whose run.yaml still says `training` while no job of the studio writes it was killed: it shows as
interrupted, and resumes from its latest checkpoint like one stopped with Ctrl-C.
"""
from __future__ import annotations

import asyncio
import json
import shutil

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, StreamingResponse

from likeme import runs
from likeme.errors import LikemeError
from likeme.serve.errors import ApiError


def run_name_for(recipe: str, person: str | None) -> str:
    """The default folder of a run the page starts: voice of "Ana María" -> "ana-maría-voice"."""
    return f"{runs.slug(person)}-{recipe}" if person else {"classifier": "authors"}.get(recipe, recipe)


def status_of(meta: dict, job) -> str:
    """run.yaml's status, except `training` with no job writing it: killed, so `interrupted`."""
    status = meta.get("status") or "?"
    return "interrupted" if status == "training" and (job is None or job.state != "running") else status


def describe(path, jobs) -> dict:
    """One run as the Runs page shows it."""
    try:
        meta = runs.read_meta(path)
    except LikemeError as e:
        return {"name": path.name, "status": "unreadable", "error": str(e)}
    job = jobs.busy_with(path.name)
    figures = {}
    if (path / "metrics.json").is_file():
        figures = json.loads((path / "metrics.json").read_text("utf-8"))
    files = sorted(p.relative_to(path).as_posix() for sub in ("plots", "export") if (path / sub).is_dir()
                   for p in (path / sub).rglob("*") if p.is_file())
    return {"name": path.name, "recipe": meta.get("recipe"), "status": status_of(meta, job),
            "created": meta.get("created"), "as": meta.get("as"), "base": meta.get("base"), "error": meta.get("error"),
            "used_as": runs.used_as(meta), "figures": figures, "card": runs.provenance(path), "files": files,
            "report": (path / "report.html").is_file(), "job": job.card() if job else None,
            "max_steps": (meta.get("config") or {}).get("max_steps")}


def runs_router(app) -> APIRouter:
    router = APIRouter(prefix="/api/runs")
    places, jobs = app.state.places, app.state.jobs

    @router.get("")
    async def all_runs():
        found = await asyncio.to_thread(runs.all_runs)
        return {"runs": [describe(p, jobs) for p in reversed(found)]}

    @router.get("/{name}/events")
    async def events(name: str, request: Request):
        path = places.run(name, must_exist=False)

        async def stream():
            sent, quiet = 0, 0
            while not await request.is_disconnected():
                rows = runs.MetricsLog(path / "metrics.jsonl").rows()
                if len(rows) < sent:  # a resume cut the rows after its checkpoint
                    sent = 0
                    yield "event: reset\ndata: {}\n\n"
                job = jobs.busy_with(name)
                meta = runs.read_meta(path) if (path / "run.yaml").is_file() else {}
                last = jobs.last_for(name)
                status = status_of(meta, job) if meta else "starting" if job else last.state if last else "none"
                body = {"rows": rows[sent:], "status": status, "job": job.card() if job else None,
                        "last": last.card() if last else None}
                sent = len(rows)
                yield f"data: {json.dumps(body)}\n\n"
                quiet = quiet + 1 if job is None else 0
                if quiet > 1:  # nothing writes the run any more: the page has every row
                    return
                await asyncio.sleep(0.5)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @router.get("/{name}/files/{rel:path}")
    async def files(name: str, rel: str):
        f = places.run_file(name, rel)
        download = rel.startswith("export/")
        return FileResponse(f, filename=f.name if download else None,
                            content_disposition_type="attachment" if download else "inline")

    def meta_of(name: str) -> tuple:
        path = places.run(name)
        return path, runs.read_meta(path)

    @router.post("/{name}/resume")
    async def resume(name: str):
        path, meta = meta_of(name)
        if meta.get("status") == "done":
            raise ApiError(409, f"{name} has finished already: nothing to resume", code="run_done")
        args = ["train", meta.get("recipe"), "--out", str(path), "--resume", "-q"]
        return app.state.queued(jobs.submit(args, title=f"resume {name}", run=name))

    @router.post("/{name}/report")
    async def report(name: str, body: dict):
        path, meta = meta_of(name)
        if runs.used_as(meta) != "voice" or not meta.get("as"):
            raise ApiError(400, f"{name} is a {meta.get('recipe')} run: the report is of a voice", param="run")
        if meta.get("status") != "done":
            raise ApiError(409, f"{name} is not finished ({meta.get('status')}): resume it first", code="run_unfinished")
        data = places.check(body.get("data") or "")
        if not data.exists():
            raise ApiError(404, f"{body.get('data')}: no such file or folder", param="data")
        args = ["report", str(path), "--data", str(data), "--as", meta["as"], "--samples", str(int(body.get("samples") or 50))]
        return app.state.queued(jobs.submit(args, title=f"report of {name}", run=name, kind="report"))

    @router.post("/{name}/export")
    async def export(name: str, body: dict):
        path, meta = meta_of(name)
        to = body.get("to")
        if to not in ("hf", "gguf", "ollama"):
            raise ApiError(400, "export to hf, gguf or ollama", param="to")
        if runs.used_as(meta) != "voice" or meta.get("status") != "done":
            raise ApiError(400, f"{name}: only a finished voice exports (it is a {meta.get('status')} "
                                f"{meta.get('recipe')} run)", param="run")
        return app.state.queued(jobs.submit(["export", str(path), "--to", to], title=f"export {name} to {to}",
                                            run=name, kind="export"))

    @router.post("/{name}/chat")
    async def chat(name: str):
        from likeme.serve.registry import load_models

        path, meta = meta_of(name)
        if runs.used_as(meta) != "voice" or meta.get("status") != "done" or not meta.get("as"):
            raise ApiError(400, f"{name}: chat with a finished voice run (this is a {meta.get('status')} "
                                f"{meta.get('recipe')} run)", param="run")
        served = app.state.served
        async with app.state.chat_lock:
            if name not in served:
                loaded = await asyncio.to_thread(load_models, [str(path)])
                served.clear()  # one voice in memory at a time
                served.update(loaded)
        return {"url": "/chat/", "model": name}

    @router.delete("/{name}")
    async def delete(name: str):
        path = places.run(name)
        job = jobs.busy_with(name)
        if job:
            raise ApiError(409, f"{name} is in job {job.id} ({job.title}): stop it first", code="run_busy")
        app.state.served.pop(name, None)
        await asyncio.to_thread(shutil.rmtree, path)
        return {"deleted": name}

    return router
