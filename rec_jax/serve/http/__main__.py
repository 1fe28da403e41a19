"""``python -m rec_jax.serve.http --model-dir RUN [...]``: the decision service on uvicorn.

Binds 127.0.0.1 unless ``--host`` says otherwise; prints one line when it is ready
(model loaded, every bucket compiled), then serves until SIGINT/SIGTERM.
"""
from __future__ import annotations

import sys

import rec_jax.cli
from rec_jax.serve.http.app import ServiceConfig


def uvicorn_config(cfg: ServiceConfig, app):
    """The production server's settings: uvloop, httptools, no access log."""
    import uvicorn

    return uvicorn.Config(app, host=cfg.host, port=cfg.port, loop="uvloop", http="httptools", lifespan="on",
                          access_log=False, log_level="warning", timeout_graceful_shutdown=5,
                          proxy_headers=False)  # direct clients: no X-Forwarded-* rewriting per request


def main(cfg: ServiceConfig) -> int:
    import uvicorn

    from rec_jax.serve.http.app import load_model, make_app

    def ready(service):
        restored = f", {service.restored_users} users restored from the log" if service.restored_users else ""
        print(f"rec_jax service ready on http://{cfg.host}:{cfg.port} (model {service.ranker.model_version}, "
              f"policies {', '.join(cfg.policy)}, log {service.log.path}{restored})", flush=True)

    if not cfg.model_dir:
        raise ValueError("--model-dir: expected a train_sequential.py run folder")
    loaded = load_model(cfg.model_dir)  # here, so a bad folder is one line, not a server traceback
    server = uvicorn.Server(uvicorn_config(cfg, make_app(cfg, loaded, on_ready=ready)))
    server.run()
    return 0 if server.started else 1


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(ServiceConfig, main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
