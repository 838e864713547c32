"""Operational routes: liveness, readiness, Prometheus metrics, and the sandbox's JSON API.

HTTP counters live in a registry of their own here; `/metrics` serves them after the
pipeline's registry (jobs, sends, dead letters, queue depth).
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from whatsapp_api_integration.web.operators import is_operator

log = logging.getLogger(__name__)
access_log = logging.getLogger("whatsapp_api_integration.access")

HTTP_REGISTRY = CollectorRegistry()
HTTP_REQUESTS = Counter(
    "whatsapp_http_requests_total",
    "HTTP requests answered, by route, method and status.",
    ["route", "method", "status"],
    registry=HTTP_REGISTRY,
)
HTTP_DURATION = Histogram(
    "whatsapp_http_request_duration_seconds",
    "Time to answer an HTTP request, by route.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=HTTP_REGISTRY,
)


# `labels()` validates and locks on every call: too slow for each request. A method the
# client makes up is a label too, so the cache is bounded (the children stay registered).
@functools.lru_cache(maxsize=512)
def _requests_counter(route: str, method: str, status: int) -> Counter:
    return HTTP_REQUESTS.labels(route, method, str(status))


@functools.lru_cache(maxsize=128)
def _duration_histogram(route: str) -> Histogram:
    return HTTP_DURATION.labels(route)


blueprint = Blueprint("whatsapp_ops", __name__)
sandbox_blueprint = Blueprint("whatsapp_sandbox", __name__, url_prefix="/sandbox")


def _state() -> Any:
    return current_app.extensions["whatsapp_gateway"]


@blueprint.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@blueprint.get("/readyz")
def readyz() -> tuple[Response, int]:
    try:
        ready, detail = _state().gateway.ready()
    except Exception as error:  # readiness must answer, whatever the store does
        ready, detail = False, f"{type(error).__name__}: {error}"
    return jsonify(ready=ready, detail=detail), 200 if ready else 503


@blueprint.get("/metrics")
def metrics() -> Response:
    text = b""
    try:
        from whatsapp_api_integration.pipeline.metrics import REGISTRY

        refresh = getattr(_state().gateway, "refresh_metrics", None)
        if callable(refresh):
            refresh()
        text = generate_latest(REGISTRY)
    except Exception as error:  # the HTTP counters are still worth serving
        log.warning("pipeline metrics unavailable: %s", error)
    return Response(text + generate_latest(HTTP_REGISTRY), mimetype=CONTENT_TYPE_LATEST)


# ---- sandbox ---------------------------------------------------------------------------


@sandbox_blueprint.before_request
def _only_for_operators() -> None:
    authorization = request.headers.get("Authorization")
    admin_token = _state().settings.admin_token
    if not is_operator(request.remote_addr, request.headers, authorization, admin_token):
        abort(403)


@sandbox_blueprint.get("/conversations/<contact>")
def conversation(contact: str) -> Response:
    """What the contact sent and what the sandbox 'sent' back, oldest first."""
    limit = request.args.get("limit", default=50, type=int) or 50
    entries = _state().gateway.conversation(contact, limit=max(1, min(limit, 500)))
    return jsonify(contact=contact, messages=entries)


# ---- request accounting ----------------------------------------------------------------


def install_request_accounting(app: Flask) -> None:
    """Count and time every request, and write an access log line without query strings
    (the handshake's query string carries WPP_VERIFY_TOKEN)."""

    @app.before_request
    def _start_timer() -> None:
        g.whatsapp_started = time.perf_counter()

    @app.after_request
    def _account(response: Response) -> Response:
        started = g.pop("whatsapp_started", None)
        elapsed = time.perf_counter() - started if started is not None else 0.0
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        _requests_counter(route, request.method, response.status_code).inc()
        _duration_histogram(route).observe(elapsed)
        if not request.environ.get("SERVER_SOFTWARE", "").startswith("Werkzeug"):
            # (Flask's development server writes its own line, redacted by logging_setup.)
            # Pages that poll (the playground, the operator view) mark their reads quiet,
            # or their lines would bury everything else at INFO.
            level = logging.DEBUG if g.get("quiet_access_log") else logging.INFO
            if access_log.isEnabledFor(level):  # (request.path is decoded on first use)
                access_log.log(
                    level,
                    "%s %s %d %.1fms",
                    request.method,
                    request.path,
                    response.status_code,
                    elapsed * 1000,
                )
        return response
