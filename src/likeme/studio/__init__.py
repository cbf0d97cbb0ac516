"""`likeme studio`: the whole path in the browser, from an export to a voice you can talk to.

    likeme studio                      # http://127.0.0.1:8000: Data, Train, Runs
    likeme studio --allow ~/exports    # paths it may read besides $LIKEME_HOME and your home folder

Three pages on one FastAPI app (`app.py`): **Data** (add exports, the people table, forget a person),
**Train** (a recipe's form drawn from its config fields, `forms.py`; the job is the CLI in a child
process, one at a time, `jobs.py`; a live loss curve over server-sent events), **Runs** (each run's
provenance card, figures and plots, its report, the chat page of `likeme serve`, exports, delete).

Safe as `likeme serve` is: 127.0.0.1 by default, an API key needed on any other address, uploads of
bounded size, and paths outside the allowed places (`places.py`) refused with a 403. Starting it imports
no torch, and a page view loads no model: the chat page loads its voice when asked to chat.
"""
from __future__ import annotations

import os


def studio(*, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None, allow=(), db=None,
           max_upload_mb: int = 500) -> None:
    """Serve the studio until Ctrl-C (a running job is stopped as Ctrl-C stops it: with a checkpoint)."""
    import logging

    import uvicorn

    from likeme.serve import check_host
    from likeme.studio.app import create_app

    api_key = api_key or os.environ.get("LIKEME_API_KEY") or None
    check_host(host, api_key)
    app = create_app(api_key=api_key, allow=allow, db=db, max_upload_bytes=max_upload_mb * 2**20)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    config = uvicorn.Config(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run()
    finally:
        app.state.jobs.close()
