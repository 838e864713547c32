"""Routes of the playground and the operator views, and their JSON APIs.

Pages: `GET /playground`, `GET /ops/`, `GET|POST /ops/login`, `POST /ops/logout`.
APIs (JSON; a POST must be `application/json`, which a cross-site form cannot send):
- `GET  /playground/api/info`: mode, the number the playground writes to, recent contacts;
- `POST /playground/api/messages`: a contact writes (`text`) or taps (`reply`);
- `GET  /playground/api/conversation?contact=`: the conversation as WhatsApp shows it;
- `POST /playground/api/statuses`: sandbox only: the phone reports delivered / read / failed;
- `GET  /ops/api/overview`, `GET /ops/api/conversation?contact=`,
  `POST /ops/api/dead-letters/<id>/replay`.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from whatsapp_api_integration.core.signature import sign
from whatsapp_api_integration.web import intake
from whatsapp_api_integration.web.playground import access, views

if TYPE_CHECKING:
    from whatsapp_api_integration.pipeline.gateway import Gateway
    from whatsapp_api_integration.settings import Settings

blueprint = Blueprint(
    "whatsapp_playground",
    __name__,
    static_folder="static",
    static_url_path="/playground/static",
    template_folder="templates",
)

# The number a sandbox simulates when WPP_PHONE_NUMBER_IDENTIFIER is unset (as `simulate`).
SANDBOX_PHONE_NUMBER_ID = "100000000000000"
DISPLAY_PHONE_NUMBER = "15550000000"
MAX_TEXT = 65536  # far above WhatsApp's 4,096: the gateway must take long texts whole
CONTACT_PATTERN = re.compile(r"^[1-9]\d{6,19}$")
OPEN_ENDPOINTS = {"whatsapp_playground.static", "whatsapp_playground.login"}
STATUS_CHAINS = {
    "delivered": ("sent", "delivered"),
    "read": ("sent", "delivered", "read"),
    "failed": ("failed",),
}
# What Meta reports for a message it could not deliver (its error codes reference).
DEFAULT_FAILURE = {
    "code": 131026,
    "title": "Message Undeliverable",
    "message": "Message Undeliverable",
    "error_data": {"details": "Unable to deliver message (simulated by the playground)."},
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src * data: blob:; media-src *; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
        "base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class BadRequest(Exception):
    """A request the APIs refuse; its message says what and where."""


def _settings() -> Settings:
    settings: Settings = current_app.extensions["whatsapp_gateway"].settings
    return settings


def _gateway() -> Gateway:
    gateway: Gateway = current_app.extensions["whatsapp_gateway"].gateway
    return gateway


def _details() -> views.InboundDetails:
    key = "whatsapp_playground_details"
    details = current_app.extensions.get(key)
    if details is None:
        details = current_app.extensions[key] = views.InboundDetails(_gateway().store)
    assert isinstance(details, views.InboundDetails)
    return details


TOO_MANY_GUESSES = "too many wrong admin tokens in the last minute; wait a minute and try again"


def _throttle() -> access.FailureThrottle:
    key = "whatsapp_playground_throttle"
    throttle = current_app.extensions.get(key)
    if throttle is None:
        throttle = current_app.extensions[key] = access.FailureThrottle()
    assert isinstance(throttle, access.FailureThrottle)
    return throttle


def _is_api(path: str) -> bool:
    return path.startswith(("/playground/api/", "/ops/api/"))


# ---- guard ---------------------------------------------------------------------------------


@blueprint.before_request
def _guard() -> ResponseReturnValue | None:
    if request.method == "GET" and (
        _is_api(request.path) or request.endpoint == "whatsapp_playground.static"
    ):
        g.quiet_access_log = True  # polled every second or so: DEBUG, not INFO
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    settings = _settings()
    given = access.bearer(request)
    if given is not None and settings.admin_token:
        if _throttle().locked():
            return jsonify(error=TOO_MANY_GUESSES), 429
        if not access.token_matches(given, settings.admin_token):
            _throttle().failed()
    if not access.allowed(request, settings):
        reason = access.refusal_reason(request, settings)
        if _is_api(request.path):
            return jsonify(error=reason), 401
        if settings.admin_token:
            target = access.next_without_credentials(request.path, request.args)
            return redirect(url_for("whatsapp_playground.login", next=target))
        page = render_template("playground/refused.html", reason=reason)
        return make_response(page, 403)
    needs_json = request.method == "POST" and request.endpoint != "whatsapp_playground.logout"
    if needs_json and not request.is_json:
        return jsonify(error="expected a JSON body (Content-Type: application/json)"), 415
    return None


@blueprint.after_request
def _secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint != "whatsapp_playground.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.errorhandler(BadRequest)
def _bad_request(error: BadRequest) -> tuple[Response, int]:
    return jsonify(error=str(error)), 400


# ---- login ---------------------------------------------------------------------------------


@blueprint.route("/ops/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    settings = _settings()
    target = access.safe_next(request.values.get("next"), url_for("whatsapp_playground.ops"))
    if not settings.admin_token:
        reason = access.refusal_reason(request, settings)
        return render_template("playground/refused.html", reason=reason), 403
    if request.method == "GET":
        return render_template("playground/login.html", next=target, wrong=False)
    if _throttle().locked():
        return render_template("playground/login.html", next=target, wrong=False, busy=True), 429
    if not access.token_matches(request.form.get("token"), settings.admin_token):
        _throttle().failed()
        return render_template("playground/login.html", next=target, wrong=True), 401
    response = redirect(target)
    response.set_cookie(
        access.COOKIE_NAME,
        access.session_value(settings.admin_token),
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
        path="/",
    )
    return response


@blueprint.post("/ops/logout")
def logout() -> ResponseReturnValue:
    response = redirect(url_for("whatsapp_playground.login"))
    response.delete_cookie(access.COOKIE_NAME, path="/")
    return response


# ---- playground ----------------------------------------------------------------------------


@blueprint.get("/playground")
def playground() -> str:
    settings = _settings()
    return render_template(
        "playground/chat.html",
        sandbox=settings.sandbox,
        mode=settings.mode,
        backend=_backend_name(settings),
    )


def _backend_name(settings: Settings) -> str:
    if settings.answer_backend == "rasa":
        return f"Rasa ({settings.rasa_url})"
    return settings.answer_backend


def _phone_number_id(settings: Settings) -> str:
    if playground_provider(settings) == "serpro":
        return settings.serpro_phone_number_id or SANDBOX_PHONE_NUMBER_ID
    return settings.wpp_phone_number_identifier or SANDBOX_PHONE_NUMBER_ID


@blueprint.get("/playground/api/info")
def info() -> Response:
    settings = _settings()
    contacts = []
    details = _details()
    provider = playground_provider(settings)
    for row in _gateway().store.recent_contacts(limit=30):
        if row["provider"] != provider:
            continue
        shown = details.of(str(row["wamid"]), row["body_id"])
        contacts.append(
            {
                "contact": row["contact_id"],
                "name": shown.get("name"),
                "last": shown.get("display", row["text"]),
                "at": row["received_at"],
            }
        )
    return jsonify(
        mode=settings.mode,
        sandbox=settings.sandbox,
        phone_number_id=_phone_number_id(settings),
        provider=provider,
        backend=_backend_name(settings),
        list_button_label=settings.list_button_label,
        contacts=contacts,
    )


def _json_object() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("$: expected a JSON object")
    return data


def _contact(data: dict[str, Any]) -> str:
    raw = data.get("contact")
    if not isinstance(raw, str):
        raise BadRequest("$.contact: expected the contact's number as a string, e.g. 5561987654321")
    contact = re.sub(r"[\s()+.-]", "", raw)
    if not CONTACT_PATTERN.match(contact):
        raise BadRequest(
            f"$.contact: expected a WhatsApp number in international form, digits only "
            f"(country code first, e.g. 5561987654321), got {raw[:40]!r}"
        )
    return contact


def _short_text(data: dict[str, Any], where: str, key: str, limit: int) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{where}.{key}: expected a non-empty string")
    if len(value) > limit:
        raise BadRequest(f"{where}.{key}: {len(value)} characters, over {limit}")
    return value


def _message_object(data: dict[str, Any], contact: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "from": contact,
        "id": f"wamid.playground.{uuid.uuid4().hex}",
        "timestamp": str(int(time.time())),
    }
    reply = data.get("reply")
    if reply is None:
        message["type"] = "text"
        message["text"] = {"body": _short_text(data, "$", "text", MAX_TEXT)}
        return message
    if not isinstance(reply, dict):
        raise BadRequest("$.reply: expected an object {type, id, title}")
    kind = reply.get("type")
    if kind not in ("button_reply", "list_reply"):
        raise BadRequest(f"$.reply.type: expected button_reply or list_reply, got {kind!r}")
    chosen: dict[str, Any] = {
        "id": _short_text(reply, "$.reply", "id", 256),
        "title": _short_text(reply, "$.reply", "title", 256),
    }
    description = reply.get("description")
    if kind == "list_reply" and isinstance(description, str) and description:
        chosen["description"] = description[:256]
    message["type"] = "interactive"
    message["interactive"] = {"type": kind, kind: chosen}
    context = reply.get("context")
    if isinstance(context, str) and context:
        message["context"] = {"from": DISPLAY_PHONE_NUMBER, "id": context[:256]}
    return message


def playground_provider(settings: Settings) -> str:
    """Whom the playground's messages seem to come through: SERPRO on a gateway that has
    only SERPRO (so the replies have a sender), else the Cloud API (sandbox included)."""
    if settings.serpro_configured and not settings.cloud_api_configured:
        return "serpro"
    return "cloud_api"


def _webhook_document(settings: Settings, value: dict[str, Any]) -> dict[str, Any]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": DISPLAY_PHONE_NUMBER,
            "phone_number_id": _phone_number_id(settings),
        },
        **value,
    }
    if playground_provider(settings) == "serpro":
        # SERPRO posts the `value` object itself, with every array present (DESIGN §9.1).
        for key in ("contacts", "messages", "statuses", "errors"):
            value.setdefault(key, [])
        return value
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "0", "changes": [{"field": "messages", "value": value}]}],
    }


def _post_webhook(settings: Settings, document: dict[str, Any]) -> intake.Answer:
    """Through the webhook exactly as the provider's POST would go: signed with the app secret
    (Cloud API), or with SERPRO's bearer token, when they are set."""
    body = json.dumps(document, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "whatsapp-gateway-playground"}
    if playground_provider(settings) == "serpro":
        if settings.serpro_webhook_token:
            headers["Authorization"] = f"Bearer {settings.serpro_webhook_token}"
    elif settings.wpp_app_secret:
        headers[intake.SIGNATURE_HEADER] = sign(body, settings.wpp_app_secret)
    return intake.receive(body, headers, settings, _gateway())


@blueprint.post("/playground/api/messages")
def send_message() -> tuple[Response, int]:
    settings = _settings()
    data = _json_object()
    contact = _contact(data)
    name = data.get("name")
    name = name.strip()[:100] if isinstance(name, str) and name.strip() else contact
    message = _message_object(data, contact)
    document = _webhook_document(
        settings,
        {"contacts": [{"profile": {"name": name}, "wa_id": contact}], "messages": [message]},
    )
    answer = _post_webhook(settings, document)
    if answer.status != 200:
        return jsonify(error=f"the webhook answered {answer.status}", webhook=answer.body), 502
    return jsonify(wamid=message["id"], webhook=answer.body), 200


@blueprint.get("/playground/api/conversation")
def playground_conversation() -> Response:
    contact = _contact({"contact": request.args.get("contact", "")})
    limit = max(1, min(request.args.get("limit", default=200, type=int) or 200, 1000))
    items = views.conversation(_gateway().store, _details(), contact, limit)
    return jsonify(contact=contact, messages=items)


@blueprint.post("/playground/api/statuses")
def post_statuses() -> tuple[Response, int]:
    settings = _settings()
    if not settings.sandbox:
        return jsonify(error="outside sandbox mode, WhatsApp itself reports statuses"), 409
    data = _json_object()
    contact = _contact(data)
    wanted = data.get("status")
    if wanted not in STATUS_CHAINS:
        raise BadRequest(f"$.status: expected delivered, read or failed, got {wanted!r}")
    only = data.get("wamid")
    if only is not None and not isinstance(only, str):
        raise BadRequest("$.wamid: expected a string")
    store = _gateway().store
    ours = [
        entry
        for entry in store.conversation(contact, 1000)
        if entry["direction"] == "out"
        and entry.get("state") == "accepted"
        and entry.get("wamid")
        and (only is None or entry["wamid"] == only)
    ]
    if only is not None and not ours:
        raise BadRequest(f"$.wamid: no message {only!r} was sent to {contact}")
    recorded = store.statuses_of([str(entry["wamid"]) for entry in ours])
    statuses = []
    now = str(int(time.time()))
    for entry in ours:
        wamid = str(entry["wamid"])
        seen = {s["status"] for s in recorded.get(wamid, [])}
        if "failed" in seen or (wanted == "failed" and seen & {"read", "played"}):
            continue
        for status in STATUS_CHAINS[wanted]:
            if status in seen:
                continue
            item: dict[str, Any] = {
                "id": wamid,
                "status": status,
                "timestamp": now,
                "recipient_id": contact,
            }
            if status == "failed":
                item["errors"] = [DEFAULT_FAILURE]
            statuses.append(item)
    if not statuses:
        return jsonify(posted=0), 200
    answer = _post_webhook(settings, _webhook_document(settings, {"statuses": statuses}))
    if answer.status != 200:
        return jsonify(error=f"the webhook answered {answer.status}", webhook=answer.body), 502
    return jsonify(posted=len(statuses)), 200


# ---- operator views ------------------------------------------------------------------------


@blueprint.get("/ops/")
def ops() -> str:
    settings = _settings()
    return render_template(
        "playground/ops.html",
        mode=settings.mode,
        backend=_backend_name(settings),
        signed_in=access.has_token(request, settings),
    )


@blueprint.get("/ops/api/overview")
def overview() -> Response:
    settings = _settings()
    gateway = _gateway()
    store = gateway.store
    details = _details()
    contacts = []
    for row in store.recent_contacts(limit=50):
        shown = details.of(str(row["wamid"]), row["body_id"])
        contacts.append(
            {
                "contact_key": row["contact_key"],
                "contact": row["contact_id"],
                "provider": row["provider"],
                "name": shown.get("name"),
                "last": shown.get("display", row["text"]),
                "state": row["state"],
                "messages": row["messages"],
                "at": row["received_at"],
            }
        )
    letters = [
        {
            "id": letter.id,
            "contact_key": letter.contact_key,
            "wamid": letter.wamid,
            "text": letter.text,
            "state": letter.state,
            "error": letter.error,
            "retryable": letter.retryable,
            "attempts": letter.attempts,
            "at": letter.created_at,
        }
        for letter in store.dead_letters(limit=200)
    ]
    stats = store.stats()
    return jsonify(
        mode=settings.mode,
        now=time.time(),
        queue_depth=stats.get("queue_depth", 0),
        processing=stats.get("processing", 0),
        stats=stats,
        contacts=contacts,
        dead_letters=letters,
    )


@blueprint.get("/ops/api/conversation")
def ops_conversation() -> Response:
    contact = request.args.get("contact", "")
    if not contact or len(contact) > 400:
        raise BadRequest("contact: expected a contact key from the overview")
    items = views.conversation(_gateway().store, _details(), contact, 200)
    return jsonify(contact=contact, messages=views.message_paths(items))


@blueprint.post("/ops/api/dead-letters/<int:letter_id>/replay")
def replay(letter_id: int) -> tuple[Response, int]:
    if not _gateway().replay(letter_id):
        return jsonify(error=f"no dead letter {letter_id} waiting to be replayed"), 404
    return jsonify(replayed=letter_id), 200
