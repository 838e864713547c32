"""The Flask host: `create_app()` wires settings, logging, the gateway and the routes.

The app answers webhooks; the gateway's worker threads (started here unless WORKERS=0) call
the bot and send. Threads are started in the process that serves, never before a fork: the
`serve` command builds the app inside granian's worker process, and under Flask's reloader
only the child that serves starts them.
"""

from __future__ import annotations

import logging
import multiprocessing.util
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from whatsapp_api_integration import logging_setup
from whatsapp_api_integration.settings import Settings, build_gateway, load_settings
from whatsapp_api_integration.web import ops, playground, proactive, webhook

if TYPE_CHECKING:
    from whatsapp_api_integration.pipeline.gateway import Gateway

log = logging.getLogger(__name__)

EXTENSION = "whatsapp_gateway"


@dataclass
class GatewayState:
    """What the routes need, kept in `app.extensions["whatsapp_gateway"]`."""

    settings: Settings
    gateway: Gateway
    owns_gateway: bool
    _started: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start_workers(self) -> bool:
        """Start the worker threads once; later calls do nothing. True if started now."""
        with self._lock:
            if self._started or self.settings.workers == 0:
                return False
            self._started = True
        self.gateway.start()
        # Runs at interpreter exit and, in a granian worker process, when it shuts down
        # (multiprocessing runs its finalizers there; atexit handlers would not run).
        multiprocessing.util.Finalize(self, self.stop_workers, exitpriority=10)
        log.info("started %d worker thread(s) in process %d", self.settings.workers, os.getpid())
        return True

    def stop_workers(self) -> None:
        log.info("stopping the worker threads of process %d", os.getpid())
        self.gateway.stop()


def is_reloader_parent() -> bool:
    """True in the process that Flask's reloader (`flask run --debug`) watches files from:
    it loads the app but never serves, so it must not work jobs; its child serves."""
    if os.environ.get("WERKZEUG_RUN_MAIN") == "true":  # the reloader's child
        return False
    program, arguments = Path(sys.argv[0]), sys.argv[1:]
    flask_cli = program.name == "flask" or program.parent.name == "flask"  # or python -m flask
    if not flask_cli or "run" not in arguments or "--no-reload" in arguments:
        return False
    debug = os.environ.get("FLASK_DEBUG", "").lower() in ("1", "true", "yes", "on")
    return debug or "--debug" in arguments or "--reload" in arguments


def create_app(
    settings: Settings | None = None,
    *,
    gateway: Gateway | None = None,
    start_workers: bool | None = None,
) -> Flask:
    """The Flask app serving the webhook, the ops routes and (in sandbox) the sandbox API.

    `gateway`: one the caller owns (tests, an embedding host); its workers are the caller's
    to start. Otherwise one is built from the settings, and its workers are started when
    WORKERS > 0 (override with `start_workers`).
    """
    settings = settings or load_settings()
    logging_setup.configure(
        settings.log_level,
        settings.log_format,
        settings.mask_contacts,
        secrets=settings.secrets(),
    )
    for warning in settings.warnings:
        log.warning(warning)

    owns_gateway = gateway is None
    if gateway is None:
        gateway = build_gateway(settings)

    app = Flask(__name__)
    # Flask refuses bodies over this, and caps the read of a streamed (chunked) body.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    state = GatewayState(settings=settings, gateway=gateway, owns_gateway=owns_gateway)
    app.extensions[EXTENSION] = state

    app.register_blueprint(webhook.blueprint)
    app.register_blueprint(ops.blueprint)
    app.register_blueprint(proactive.blueprint)
    if settings.sandbox:
        app.register_blueprint(ops.sandbox_blueprint)
    playground.register(app, settings)
    ops.install_request_accounting(app)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> tuple[Response, int]:
        status = error.code or 500
        return jsonify(error=error.description or error.name), status

    if start_workers is None:
        start_workers = owns_gateway and not is_reloader_parent()
    if start_workers:
        state.start_workers()
    log.info(
        "gateway ready: mode %s, backend %s, store %s",
        settings.mode,
        settings.answer_backend,
        settings.database_url.split(":", 1)[0],
    )
    return app


def gateway_state(app: Flask) -> GatewayState:
    state: GatewayState = app.extensions[EXTENSION]
    return state
