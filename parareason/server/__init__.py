"""OpenAI-compatible server (`parareason serve`): FastAPI app over one engine loop.

`create_app(backend, ServeDefaults(model_id=...))` builds the app; see app.py for the
endpoints, routing.py for per-request policy selection, engine_loop.py for how
requests in flight share one scheduler and one backend batch.
"""
from parareason.server.app import create_app
from parareason.server.routing import ServeDefaults

__all__ = ["ServeDefaults", "create_app"]
