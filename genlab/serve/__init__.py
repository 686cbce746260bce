"""`genlab serve`: any genlab model behind an OpenAI-compatible ``/v1`` API."""

from __future__ import annotations

from genlab.machine import listen_socket
from genlab.models import Budget
from genlab.serve.app import create_app
from genlab.serve.guard import ServeLimits, check_binding

__all__ = ["ServeLimits", "create_app", "serve"]


def serve(specs: list[str], *, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          budget: Budget | None = None, limits: ServeLimits | None = None,
          allow_hosts: list[str] | None = None, on_ready=None) -> None:
    """Run the server until interrupted; loads the embedded model before accepting requests.
    ``on_ready(port)`` is called with the bound port (``port`` 0 takes any free one)."""
    import uvicorn

    check_binding(host, api_key)
    app = create_app(specs, api_key=api_key, budget=budget, host=host, limits=limits, allow_hosts=allow_hosts)
    sock = listen_socket(host, port)
    for served in app.state.pool.served.values():
        served.model.backend.warm_up()  # a first request should not wait for the model to load
    if on_ready:
        on_ready(sock.getsockname()[1])
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
