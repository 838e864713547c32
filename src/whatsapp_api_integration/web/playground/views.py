"""What the playground and the operator views show, shaped from the store's records.

Inbound messages are shown as the contact wrote them (a tapped button shows its title, not
its id), which only the stored webhook body knows; `InboundDetails` parses it once per message
and keeps the result. Outbound messages carry the request body WhatsApp got, the problems
`check_cloud_api` finds in it (none, if the core is right), their delivery state for the
ticks, and Meta's error when WhatsApp reported a failure.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from whatsapp_api_integration.core.events import (
    ButtonReply,
    ListReply,
    Media,
    Message,
    TemplateButton,
    Text,
)
from whatsapp_api_integration.core.inbound import WebhookFormatError, parse_webhook
from whatsapp_api_integration.core.outbound import check_cloud_api

if TYPE_CHECKING:
    from whatsapp_api_integration.store import Store

# Delivery states, in the order WhatsApp's ticks move through them.
DELIVERY_ORDER = ("pending", "sent", "delivered", "read", "failed")


class InboundDetails:
    """Name, display text and quoted message of stored inbound messages, by wamid."""

    def __init__(self, store: Store, keep: int = 4096) -> None:
        self.store = store
        self.keep = keep
        self._cache: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def of(self, wamid: str, body_id: int | None) -> dict[str, Any]:
        with self._lock:
            if wamid in self._cache:
                return self._cache[wamid]
        details = self._parse(wamid, body_id)
        with self._lock:
            self._cache[wamid] = details
            while len(self._cache) > self.keep:
                self._cache.popitem(last=False)
        return details

    def _parse(self, wamid: str, body_id: int | None) -> dict[str, Any]:
        if body_id is None:
            return {}
        try:
            events = parse_webhook(self.store.body(body_id))
        except (WebhookFormatError, LookupError, ValueError):
            return {}
        message = next((e for e in events if isinstance(e, Message) and e.id == wamid), None)
        return describe_inbound(message) if message is not None else {}


def describe_inbound(message: Message) -> dict[str, Any]:
    data = message.data
    shown: dict[str, Any] = {"name": message.contact_name}
    if isinstance(data, Text):
        shown["display"] = data.body
    elif isinstance(data, (ButtonReply, ListReply)):
        shown["display"] = data.title
        shown["reply_id"] = data.id
        if isinstance(data, ListReply) and data.description:
            shown["description"] = data.description
    elif isinstance(data, TemplateButton):
        shown["display"] = data.text or data.payload
    elif isinstance(data, Media):
        shown["display"] = data.caption or f"[{data.kind}]"
    else:
        shown["display"] = f"[{message.type}]"
    if message.context is not None and message.context.id:
        shown["quoted"] = message.context.id
    return shown


def delivery(state: str | None, status: str | None) -> str:
    """The ticks an outgoing message shows: pending, sent, delivered, read or failed."""
    if state == "failed" or status == "failed":
        return "failed"
    if state != "accepted":
        return "pending"
    if status in ("read", "played"):
        return "read"
    if status == "delivered":
        return "delivered"
    return "sent"  # accepted by WhatsApp (or recorded by the sandbox)


def meta_error(statuses: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Meta's error from a `failed` status: code, title, message, details."""
    for status in statuses:
        if status.get("status") == "failed":
            errors = status.get("errors") or [{}]
            first = errors[0] if isinstance(errors[0], Mapping) else {}
            return {
                key: first.get(key)
                for key in ("code", "title", "message", "details")
                if first.get(key) is not None
            } or {"title": "failed (no error given)"}
    return None


def serpro_as_cloud(request: Mapping[str, Any]) -> dict[str, Any] | None:
    """A SERPRO request (`{"path", "body"}`, as the pipeline records it) as the Graph body
    WhatsApp would show alike, so the pages render and check both the same way; None for a
    request they do not model (templates, custom paths)."""
    path, body = request.get("path"), request.get("body")
    if not isinstance(path, str) or not isinstance(body, Mapping):
        return None
    cloud: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "to": str(body.get("destinatario") or "").lstrip("+"),
    }
    kind = path.rstrip("/").rsplit("/", 1)[-1]
    if kind == "texto":
        cloud.update(type="text", text={"body": body.get("body")})
    elif kind == "interativa-botoes":
        buttons = [
            {"type": "reply", "reply": {"id": b.get("id"), "title": b.get("titulo")}}
            for b in body.get("buttons") or []
            if isinstance(b, Mapping)
        ]
        interactive = {
            "type": "button",
            "body": {"text": body.get("textoBody")},
            "action": {"buttons": buttons},
        }
        cloud.update(type="interactive", interactive=interactive)
    elif kind == "interativa-lista":
        sections = []
        for section in body.get("secoes") or []:
            if not isinstance(section, Mapping):
                continue
            rows = []
            for row in section.get("rows") or []:
                if isinstance(row, Mapping):
                    shown = {"id": row.get("id"), "title": row.get("titulo")}
                    if row.get("descricao"):  # SERPRO gets "" for none; Graph omits it
                        shown["description"] = row["descricao"]
                    rows.append(shown)
            sections.append({"title": section.get("titulo"), "rows": rows})
        interactive = {
            "type": "list",
            "body": {"text": body.get("textoBody")},
            "action": {"button": body.get("button"), "sections": sections},
        }
        cloud.update(type="interactive", interactive=interactive)
    elif kind == "media":
        media_kind = str(body.get("tipoMedia") or "document")
        fields = (("link", "linkMedia"), ("id", "idMedia"), ("caption", "caption"))
        media = {key: body[source] for key, source in fields if body.get(source)}
        if body.get("filename"):
            media["filename"] = body["filename"]
        cloud.update({"type": media_kind, media_kind: media})
    elif kind == "interativa-localizacao":
        interactive = {
            "type": "location_request_message",
            "body": {"text": body.get("textoBody")},
            "action": {"name": "send_location"},
        }
        cloud.update(type="interactive", interactive=interactive)
    else:
        return None
    return cloud


def outbound_item(
    entry: Mapping[str, Any], statuses: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    body = entry.get("body")
    shown: Any = body
    problems: list[str] = []
    if entry.get("provider") == "serpro":
        converted = serpro_as_cloud(body) if isinstance(body, Mapping) else None
        if converted is not None:
            shown, problems = converted, check_cloud_api(converted)
    elif isinstance(body, Mapping):
        problems = check_cloud_api(body)
    return {
        "direction": "out",
        "id": entry["id"],
        "at": entry["at"],
        "wamid": entry.get("wamid"),
        "provider": entry.get("provider"),
        "in_reply_to": entry.get("in_reply_to"),
        "seq": entry.get("seq"),
        "body": shown,  # as Graph would carry it (a SERPRO request, converted)
        "request": body,  # as the provider got it
        "state": entry.get("state"),
        "status": entry.get("status"),
        "error": entry.get("error"),
        "delivery": delivery(entry.get("state"), entry.get("status")),
        "meta_error": meta_error(statuses),
        "statuses": [
            {
                "status": s.get("status"),
                "at": s.get("received_at"),
                "errors": s.get("errors") or [],
            }
            for s in statuses
        ],
        "problems": problems,
    }


def inbound_item(entry: Mapping[str, Any], details: InboundDetails) -> dict[str, Any]:
    shown = details.of(str(entry["wamid"]), entry.get("body_id"))
    return {
        "direction": "in",
        "id": entry["id"],
        "at": entry["at"],
        "wamid": entry["wamid"],
        "contact_key": entry.get("contact_key"),
        "type": entry.get("type"),
        "text": entry.get("text"),
        "display": shown.get("display", entry.get("text") or f"[{entry.get('type')}]"),
        "name": shown.get("name"),
        "reply_id": shown.get("reply_id"),
        "description": shown.get("description"),
        "quoted": shown.get("quoted"),
        "state": entry.get("state"),
        "attempts": entry.get("attempts"),
        "error": entry.get("error"),
    }


def conversation(
    store: Store, details: InboundDetails, contact: str, limit: int = 100
) -> list[dict[str, Any]]:
    """A contact's messages, oldest first, each shaped for the pages."""
    entries = store.conversation(contact, limit)
    wamids = [str(e["wamid"]) for e in entries if e["direction"] == "out" and e.get("wamid")]
    statuses = store.statuses_of(wamids)
    items: list[dict[str, Any]] = []
    for entry in entries:
        if entry["direction"] == "in":
            items.append(inbound_item(entry, details))
        else:
            items.append(outbound_item(entry, statuses.get(str(entry.get("wamid")), [])))
    return items


def message_paths(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each inbound message with its replies and the path it took, for the operator view:
    received → with the bot → answered → sent → delivered → read, or where it stopped."""
    replies: dict[Any, list[Mapping[str, Any]]] = collections.defaultdict(list)
    for item in items:
        if item["direction"] == "out":
            replies[item.get("in_reply_to")].append(item)
    paths = []
    for item in items:
        if item["direction"] != "in":
            continue
        own = [
            {**reply, "path": reply_path(reply)}
            for reply in sorted(replies.get(item["id"], []), key=lambda r: r.get("seq") or 0)
        ]
        paths.append({**item, "replies": own, "path": inbound_path(item, own)})
    return paths


def _step(
    label: str, state: str, at: float | None = None, detail: str | None = None
) -> dict[str, Any]:
    return {"label": label, "state": state, "at": at, "detail": detail}


def inbound_path(
    item: Mapping[str, Any], replies: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    state = item.get("state")
    error = item.get("error")
    steps = [_step("received", "done", item.get("at"))]
    if state == "ignored":
        steps.append(_step("not for the bot", "done", detail=f"type {item.get('type')}"))
        return steps
    if state == "received":
        if item.get("attempts"):
            steps.append(_step("with the bot", "retrying", detail=error))
        else:
            steps.append(_step("queued", "current"))
        return steps
    if state == "processing":
        steps.append(_step("with the bot", "current"))
        return steps
    steps.append(_step("with the bot", "done"))
    if state == "dead":
        steps.append(_step("dead letter", "failed", detail=error))
        return steps
    steps.append(
        _step(
            "answered", "done", detail=f"{len(replies)} repl{'y' if len(replies) == 1 else 'ies'}"
        )
    )
    return steps


def reply_path(reply: Mapping[str, Any]) -> list[dict[str, Any]]:
    """sent → delivered → read (or failed with Meta's error) for one reply."""
    at = {s["status"]: s.get("at") for s in reply.get("statuses", [])}
    state = reply.get("state")
    if state == "pending":
        return [_step("sending", "current")]
    if state == "failed":
        return [_step("send failed", "failed", detail=reply.get("error"))]
    steps = [_step("sent", "done", at.get("sent"))]
    error = reply.get("meta_error")
    if error is not None:
        code = error.get("code")
        words = " — ".join(
            str(error[key]) for key in ("title", "message", "details") if error.get(key)
        )
        detail = f"{code}: {words}" if code is not None else words
        steps.append(_step("failed", "failed", at.get("failed"), detail))
        return steps
    ticks = reply.get("delivery")
    delivered = ticks in ("delivered", "read")
    steps.append(_step("delivered", "done" if delivered else "todo", at.get("delivered")))
    read_at = at.get("read") or at.get("played")
    steps.append(_step("read", "done" if ticks == "read" else "todo", read_at))
    return steps
