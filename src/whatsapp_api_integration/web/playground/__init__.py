"""The playground (`/playground`: talk to the bot as a WhatsApp contact would) and the operator
views (`/ops/`: conversations, each message's path, the queue, dead letters), DESIGN §12.

Plain HTML, CSS and JavaScript served from this package: nothing to build. What the pages
send enters the real pipeline: the playground posts a Cloud API webhook body, signed with
WPP_APP_SECRET when it is set, through the same `webhook.receive` that Meta's requests go
through; in sandbox mode the delivery statuses the page reports (delivered when it shows a
reply, read when you mark the chat read) go through the status path the same way.

Who may open them is decided in `access`; `register` adds the routes only when PLAYGROUND is on.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from whatsapp_api_integration.web.playground.routes import blueprint

if TYPE_CHECKING:
    from flask import Flask

    from whatsapp_api_integration.settings import Settings

log = logging.getLogger(__name__)

PLAYGROUND_PATH = "/playground"
OPS_PATH = "/ops/"


def register(app: Flask, settings: Settings) -> bool:
    """Serve the playground and the operator views when PLAYGROUND is on; whether it is."""
    if not settings.playground:
        return False
    app.register_blueprint(blueprint)
    log.info("playground on %s, operator view on %s", PLAYGROUND_PATH, OPS_PATH)
    if not settings.sandbox and not settings.admin_token:
        log.warning(
            "PLAYGROUND is on outside sandbox mode but ADMIN_TOKEN is not set: the playground "
            "and the operator views refuse every request until it is"
        )
    return True


def startup_banner(host: str, port: int, settings: Settings) -> str:
    """What `serve` prints at start-up so a new user sees where to click."""
    shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    if ":" in shown:
        shown = f"[{shown}]"
    base = f"http://{shown}:{port}"
    lines = [
        f"  Playground:    {base}{PLAYGROUND_PATH}   <- talk to your bot here",
        f"  Operator view: {base}{OPS_PATH}",
    ]
    if settings.sandbox:
        lines.append("  Sandbox mode: the bot's replies are recorded and shown, not sent.")
    if not settings.admin_token and not settings.sandbox:
        lines.append("  Set ADMIN_TOKEN to open them: outside sandbox they need it.")
    elif settings.admin_token:
        lines.append("  Off this machine, sign in with the ADMIN_TOKEN setting's value.")
    elif host not in ("127.0.0.1", "localhost", "::1"):
        lines.append("  Without ADMIN_TOKEN they answer only on this machine (loopback).")
    width = max(len(line) for line in lines) + 2
    rule = "=" * width
    return "\n".join(["", rule, *lines, rule, ""])


__all__ = ["OPS_PATH", "PLAYGROUND_PATH", "blueprint", "register", "startup_banner"]
