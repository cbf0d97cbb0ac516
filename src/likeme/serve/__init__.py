"""`likeme serve`: runs behind an OpenAI-compatible HTTP API, with a chat page (`app.py` has the routes).

    likeme serve runs/ana-voice runs/ana-embedder            # http://127.0.0.1:8000
    >>> from openai import OpenAI
    >>> client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
    >>> client.chat.completions.create(model="ana-voice", messages=[{"role": "user", "content": "hi"}])

Safe by default: it listens on 127.0.0.1 only, and refuses to listen anywhere else without an API key.
"""
from __future__ import annotations

import ipaddress
import os

from likeme.errors import LikemeError


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach: is_loopback("127.0.0.1") -> True,
    is_loopback("0.0.0.0") -> False, is_loopback("localhost") -> True."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_host(host: str, api_key: str | None) -> None:
    """Refuse to listen beyond this machine without a key, saying why."""
    if not is_loopback(host) and not api_key:
        raise LikemeError(f"--host {host} lets other machines talk to your models, and there is no API key: "
                          "set one with --api-key KEY or LIKEME_API_KEY (or keep the default 127.0.0.1)")


def serve(runs: list[str], *, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          limits=None, log_messages: bool = False, device=None, backend: str = "torch",
          precision: str = "auto") -> None:
    """Load the runs and serve them until Ctrl-C."""
    import logging

    import uvicorn

    from likeme.serve.app import create_app
    from likeme.serve.registry import load_models

    api_key = api_key or os.environ.get("LIKEME_API_KEY") or None
    check_host(host, api_key)
    served = load_models(list(runs), device=device, backend=backend, precision=precision)
    app = create_app(served, api_key=api_key, limits=limits, log_messages=log_messages)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    config = uvicorn.Config(app, host=host, port=port, log_level="info", access_log=True,
                            timeout_graceful_shutdown=5)
    uvicorn.Server(config).run()
