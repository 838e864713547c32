"""Webhook bodies in, typed events out (DESIGN §5).

Two envelopes reach the same webhook path:

- Cloud API: ``{"object": "whatsapp_business_account", "entry": [{"changes": [{"field",
  "value"}]}]}``; every entry, change, message, status and error is read.
- SERPRO: the Cloud API ``value`` object itself, posted bare, plus ``idRequisicao``.

The parser is strict about shape and lenient about content: a broken envelope, a message that
is not an object or has no id, or a value of the wrong JSON type (``null`` included) raises
`WebhookFormatError`, whose text names the JSON path. Absent optional fields, unknown fields,
unknown message types and a message whose type object is missing are not errors: one odd
message never costs the others in its body. Nothing but `WebhookFormatError` escapes the
parser, whatever JSON value it is given.

The gateway parses on the request path, so the happy path is plain loops and ``dict.get``
with type checks; exceptions are raised only for malformed input.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any, NoReturn

from whatsapp_api_integration.core.events import (
    MEDIA_KINDS,
    PROVIDERS,
    ButtonReply,
    Contacts,
    Context,
    Edit,
    ErrorDetail,
    Event,
    FlowReply,
    ListReply,
    Location,
    Media,
    MediaKind,
    Message,
    MessageData,
    Order,
    Provider,
    Reaction,
    Revoke,
    Status,
    System,
    TemplateButton,
    Text,
    Unknown,
    Unsupported,
    WebhookError,
)

__all__ = [
    "CLOUD_API_OBJECT",
    "MAX_DEPTH",
    "WebhookFormatError",
    "detect_provider",
    "load_json",
    "parse_document",
    "parse_webhook",
]

CLOUD_API_OBJECT = "whatsapp_business_account"

# A real webhook nests about 12 levels deep (object > entry > changes > value > messages >
# edit > message > interactive > nfm_reply). The limit keeps every later recursive walk
# (json.dumps in the store, logs) far from Python's recursion limit.
MAX_DEPTH = 64

# The largest timestamp we accept: it must fit a signed 64-bit database column.
_MAX_TIMESTAMP = 2**63 - 1


class WebhookFormatError(ValueError):
    """The one error the parser raises: what was wrong and where, as a JSON path.

    ``path`` is ``"body"`` when the bytes are not JSON at all, ``"$"`` for the whole
    document, else a path such as ``entry[0].changes[1].value.messages[0].timestamp``.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[type[WebhookFormatError], tuple[str, str]]:
        return (type(self), (self.path, self.reason))


# ---- JSON loading ----------------------------------------------------------------------


class _NotFinite(ValueError):
    pass


def _reject_constant(name: str) -> NoReturn:
    raise _NotFinite(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NotFinite(f"the number {text[:40]} is too large for a float")
    return value


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)

# A surrogate escape (\uD800-\uDFFF) in the raw text: a high-low pair as one match, anything
# else (a lone half) as a 6-character match. A lone match can be a false alarm (an escaped
# backslash before "u"), so it only triggers the exact check of every decoded string.
_SURROGATE_ESCAPE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[dD][89a-fA-F][0-9a-fA-F]{2}"
)
_ESCAPE_LENGTH = len("\\uD800")


def _may_hold_lone_surrogate(text: str) -> bool:
    return any(
        match.end() - match.start() == _ESCAPE_LENGTH for match in _SURROGATE_ESCAPE.finditer(text)
    )


def load_json(body: bytes | str) -> Any:
    """Decode a webhook body strictly.

    UTF-8 only (no BOM), no ``NaN``/``Infinity`` or numbers that overflow a float, no string
    holding a lone surrogate (it could not be encoded again to store or forward it), and no
    nesting deeper than `MAX_DEPTH`. Duplicate keys are allowed (the last one wins, as in
    every JSON library). Raises `WebhookFormatError` with path ``"body"`` (or the path of the
    offending value).
    """
    if isinstance(body, (bytes, bytearray, memoryview)):
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError as error:
            raise WebhookFormatError(
                "body", f"not valid UTF-8 (byte {error.start}: {error.reason})"
            ) from None
    elif isinstance(body, str):
        text = body
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as error:
                raise WebhookFormatError(
                    "body", f"not valid Unicode (a lone surrogate at character {error.start})"
                ) from None
    else:
        raise TypeError(f"a webhook body is bytes or str, not {type(body).__name__}")
    try:
        document = _DECODER.decode(text)
    except json.JSONDecodeError as error:
        raise WebhookFormatError(
            "body", f"not JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        ) from None
    except RecursionError:
        raise WebhookFormatError("body", f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as error:  # _NotFinite, or an integer with too many digits
        raise WebhookFormatError("body", f"not acceptable JSON: {error}") from None
    check_strings = _may_hold_lone_surrogate(text)
    # Each level of nesting opens a bracket, so a text with at most MAX_DEPTH of them (those
    # inside strings counted too) cannot nest too deep: most bodies skip the walk.
    shallow = text.count("{") + text.count("[") <= MAX_DEPTH
    if isinstance(document, (dict, list)) and (check_strings or not shallow):
        _check_tree(document, check_strings=check_strings)
    elif check_strings and isinstance(document, str) and not _encodable(document):
        raise WebhookFormatError("$", "a string holds a lone surrogate (\\uD8xx)")
    return document


def _check_tree(document: dict[str, Any] | list[Any], *, check_strings: bool) -> None:
    """Walk the decoded tree without recursion: enforce MAX_DEPTH and, when the raw text
    had a suspicious escape, find the string holding a lone surrogate."""
    stack: list[tuple[Any, int, str]] = [(document, 1, "$")]
    while stack:
        node, depth, path = stack.pop()
        if depth > MAX_DEPTH:
            raise WebhookFormatError("body", f"nested deeper than {MAX_DEPTH} levels")
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            if check_strings:
                for text in (key, child):
                    if isinstance(text, str) and not _encodable(text):
                        raise WebhookFormatError(
                            _child_path(path, key), "a string holds a lone surrogate (\\uD8xx)"
                        )
            if isinstance(child, (dict, list)):
                # paths are built only when strings are checked, to keep the walk cheap
                stack.append((child, depth + 1, _child_path(path, key) if check_strings else ""))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _child_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return key if path == "$" else f"{path}.{key}"


# ---- provider detection ----------------------------------------------------------------

_SERPRO_MARKERS = ("metadata", "messages", "statuses")
# A SERPRO body carries `messaging_product`; one third-party capture (docs/serpro-protocol.md
# row 26) instead has `webhook_object_id` with the metadata flattened to the top level.
_SERPRO_KEYS = ("messaging_product", "webhook_object_id")


def detect_provider(document: Any) -> Provider:
    """Tell the envelopes apart by shape (never by absence alone, as the original did).

    ``cloud_api``: an object with ``object`` or ``entry``. ``serpro``: a bare ``value`` object
    (``messaging_product``, or SERPRO's ``webhook_object_id``, and at least one of
    ``metadata``, ``messages``, ``statuses``).
    Anything else raises `WebhookFormatError`.
    """
    if not isinstance(document, dict):
        _fail("$", f"expected a JSON object, got {_describe(document)}")
    if "object" in document or "entry" in document:
        return "cloud_api"
    if any(key in document for key in _SERPRO_KEYS) and any(
        key in document for key in _SERPRO_MARKERS
    ):
        return "serpro"
    raise WebhookFormatError(
        "$",
        "neither a Cloud API envelope (object, entry) nor a SERPRO value object "
        "(messaging_product with metadata, messages or statuses)",
    )


# ---- parsing ---------------------------------------------------------------------------


def parse_webhook(body: bytes | str, provider: Provider | None = None) -> list[Event]:
    """`load_json` then `parse_document`."""
    return parse_document(load_json(body), provider)


def parse_document(document: Any, provider: Provider | None = None) -> list[Event]:
    """Turn a decoded webhook body into events, in the order they appear.

    ``provider`` forces the envelope; by default `detect_provider` decides.
    """
    if provider is None:
        provider = detect_provider(document)
    elif provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}; expected one of {PROVIDERS}")
    if not isinstance(document, dict):
        _fail("$", f"expected a JSON object, got {_describe(document)}")
    events: list[Event] = []
    if provider == "cloud_api":
        _parse_cloud_api(document, events)
    else:
        _parse_serpro(document, events)
    return events


def _parse_cloud_api(document: dict[str, Any], events: list[Event]) -> None:
    kind = document.get("object", _MISSING)
    if kind is _MISSING:
        _fail("object", f'missing (expected "{CLOUD_API_OBJECT}")')
    if not isinstance(kind, str):
        _fail("object", f"expected a string, got {_describe(kind)}")
    if kind != CLOUD_API_OBJECT:
        # Another Meta product posting to the same callback URL: genuine, not ours.
        events.append(Unknown("cloud_api", None, None, reason=f"object {kind!r}", raw=document))
        return
    entries = _required(document, "entry", list, "")
    for i, entry in enumerate(entries):
        entry_path = f"entry[{i}]"
        if not isinstance(entry, dict):
            _fail(entry_path, f"expected an object, got {_describe(entry)}")
        changes = _required(entry, "changes", list, entry_path)
        for j, change in enumerate(changes):
            change_path = f"{entry_path}.changes[{j}]"
            if not isinstance(change, dict):
                _fail(change_path, f"expected an object, got {_describe(change)}")
            field = _required(change, "field", str, change_path)
            if field != "messages":
                events.append(_unknown_change(change, field))
                continue
            value = _required(change, "value", dict, change_path)
            _parse_value(value, "cloud_api", f"{change_path}.value", None, events)


def _parse_serpro(document: dict[str, Any], events: list[Event]) -> None:
    if "object" in document or "entry" in document:
        _fail("$", "a Cloud API envelope (object, entry), not a SERPRO value object")
    request_id = _opt_id(document, "idRequisicao", "")
    if "metadata" not in document and isinstance(document.get("phone_number_id"), str):
        # The flattened variant: the number's ids at the top level, no `metadata` object.
        flattened = {
            key: document[key]
            for key in ("phone_number_id", "display_phone_number")
            if isinstance(document.get(key), str)
        }
        document = {**document, "metadata": flattened}
    _parse_value(document, "serpro", "", request_id, events)


def _unknown_change(change: dict[str, Any], field: str) -> Unknown:
    phone_number_id = display_phone_number = None
    value = change.get("value")
    metadata = value.get("metadata") if isinstance(value, dict) else None
    if isinstance(metadata, dict):
        found = metadata.get("phone_number_id")
        phone_number_id = found if isinstance(found, str) else None
        found = metadata.get("display_phone_number")
        display_phone_number = found if isinstance(found, str) else None
    return Unknown(
        "cloud_api",
        phone_number_id,
        display_phone_number,
        reason=f"field {field!r}",
        field=field,
        raw=change,
    )


# (provider, phone_number_id, display_phone_number): the first three fields of every event.
_Origin = tuple[Provider, str | None, str | None]


def _parse_value(
    value: dict[str, Any],
    provider: Provider,
    path: str,
    request_id: str | None,
    events: list[Event],
) -> None:
    metadata = _optional(value, "metadata", dict, path)
    if metadata is None:
        origin: _Origin = (provider, None, None)
    else:
        metadata_path = _join(path, "metadata")
        origin = (
            provider,
            _opt_str(metadata, "phone_number_id", metadata_path),
            _opt_str(metadata, "display_phone_number", metadata_path),
        )
    messages = _optional(value, "messages", list, path)
    if messages:
        contacts = _ContactIndex(_optional(value, "contacts", list, path), _join(path, "contacts"))
        messages_path = _join(path, "messages")
        for i, raw in enumerate(messages):
            events.append(_parse_message(raw, f"{messages_path}[{i}]", origin, contacts, None))
    statuses = _optional(value, "statuses", list, path)
    if statuses:
        statuses_path = _join(path, "statuses")
        for i, raw in enumerate(statuses):
            events.append(_parse_status(raw, f"{statuses_path}[{i}]", origin, request_id))
    errors = _errors(value, path)
    if errors:
        events.append(WebhookError(*origin, errors=errors, raw={"errors": value["errors"]}))


class _ContactIndex:
    """``value.contacts`` by wa_id and by BSUID: a message finds its contact by identity,
    never by list position."""

    __slots__ = ("by_user_id", "by_wa_id")

    def __init__(self, contacts: list[Any] | None, path: str) -> None:
        # each entry: (name, username, wa_id, user_id)
        self.by_wa_id: dict[str, tuple[str | None, str | None, str | None, str | None]] = {}
        self.by_user_id: dict[str, tuple[str | None, str | None, str | None, str | None]] = {}
        for i, contact in enumerate(contacts or ()):
            contact_path = f"{path}[{i}]"
            if not isinstance(contact, dict):
                _fail(contact_path, f"expected an object, got {_describe(contact)}")
            profile = _optional(contact, "profile", dict, contact_path)
            name = username = None
            if profile is not None:
                profile_path = f"{contact_path}.profile"
                name = _opt_str(profile, "name", profile_path)
                username = _opt_str(profile, "username", profile_path)
            wa_id = _opt_str(contact, "wa_id", contact_path)
            user_id = _opt_str(contact, "user_id", contact_path)
            entry = (name, username, wa_id, user_id)
            if wa_id:
                self.by_wa_id.setdefault(wa_id, entry)
            if user_id:
                self.by_user_id.setdefault(user_id, entry)

    def find(
        self, wa_id: str | None, user_id: str | None
    ) -> tuple[str | None, str | None, str | None, str | None] | None:
        found = self.by_wa_id.get(wa_id) if wa_id else None
        if found is None and user_id:
            found = self.by_user_id.get(user_id)
        return found


# Inherited by the message inside an `edit`: (id, timestamp, from, from_user_id).
_Parent = tuple[str, int | None, str | None, str | None]


class _Unrecognised:
    """What a data parser returns when the message is of a kind the core does not know."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _parse_message(
    raw: Any,
    path: str,
    origin: _Origin,
    contacts: _ContactIndex,
    parent: _Parent | None,
) -> Message | Unknown:
    if not isinstance(raw, dict):
        _fail(path, f"expected a message object, got {_describe(raw)}")
    message_id = _opt_str(raw, "id", path)
    timestamp = _timestamp(raw, path)
    from_ = _opt_str(raw, "from", path)
    user_id = _opt_str(raw, "from_user_id", path)
    if parent is not None:  # the new version of an edited message inherits what it omits
        message_id = message_id or parent[0]
        timestamp = parent[1] if timestamp is None else timestamp
        from_ = from_ or parent[2]
        user_id = user_id or parent[3]
    if not message_id:
        _fail(_join(path, "id"), "missing or empty (a message needs its wamid)")
    message_type = _opt_str(raw, "type", path)
    context = _context(raw, path)
    referral = _optional(raw, "referral", dict, path)
    errors = _errors(raw, path)

    data: MessageData | _Unrecognised | None
    if message_type is None:
        return Unknown(
            *origin,
            reason="message without a type",
            field="messages",
            message_id=message_id,
            raw=raw,
        )
    if message_type == "edit":
        data = _edit(raw, path, origin, contacts, (message_id, timestamp, from_, user_id), parent)
    else:
        data = _parse_data(raw, message_type, path)
    if isinstance(data, _Unrecognised):
        return Unknown(
            *origin, reason=data.reason, field="messages", message_id=message_id, raw=raw
        )

    contact_name = username = None
    contact = contacts.find(from_, user_id)
    if contact is not None:
        contact_name, username = contact[0], contact[1]
        from_ = from_ or contact[2]
        user_id = user_id or contact[3]
    return Message(
        *origin,
        id=message_id,
        timestamp=timestamp,
        type=message_type,
        from_=from_,
        user_id=user_id,
        username=username,
        contact_name=contact_name,
        context=context,
        referral=referral,
        data=data,
        errors=errors,
        raw=raw,
    )


def _parse_data(
    raw: dict[str, Any], message_type: str, path: str
) -> MessageData | _Unrecognised | None:
    if message_type == "request_welcome":
        return Unsupported()
    if message_type == "unsupported":
        detail = _optional(raw, "unsupported", dict, path)
        kind = None if detail is None else _opt_str(detail, "type", f"{path}.unsupported")
        return Unsupported(unsupported_type=kind)
    parser = _DATA_PARSERS.get(message_type)
    if parser is None:
        return _Unrecognised(f"message type {message_type!r}")
    content = raw.get(message_type, _MISSING)
    if content is _MISSING:
        return None  # seen in real webhooks: the type's object is absent
    return parser(content, _join(path, message_type), message_type)


def _edit(
    raw: dict[str, Any],
    path: str,
    origin: _Origin,
    contacts: _ContactIndex,
    outer: _Parent,
    parent: _Parent | None,
) -> Edit | None:
    edit = _optional(raw, "edit", dict, path)
    if edit is None:
        return None
    edit_path = f"{path}.edit"
    original_message_id = _opt_str(edit, "original_message_id", edit_path)
    new_version = _optional(edit, "message", dict, edit_path)
    message: Message | None = None
    # An edit of an edit is not a thing WhatsApp sends; stopping at one level keeps the
    # parser free of unbounded recursion whatever document it is given.
    if new_version is not None and parent is None:
        inherited = (original_message_id or outer[0], outer[1], outer[2], outer[3])
        parsed = _parse_message(new_version, f"{edit_path}.message", origin, contacts, inherited)
        message = parsed if isinstance(parsed, Message) else None
    return Edit(original_message_id=original_message_id, message=message)


def _parse_status(raw: Any, path: str, origin: _Origin, request_id: str | None) -> Status:
    if not isinstance(raw, dict):
        _fail(path, f"expected a status object, got {_describe(raw)}")
    status_id = _opt_str(raw, "id", path)
    if not status_id:
        _fail(_join(path, "id"), "missing or empty (a status needs the wamid it is about)")
    status = _required(raw, "status", str, path)
    return Status(
        *origin,
        id=status_id,
        status=status,
        timestamp=_timestamp(raw, path),
        recipient_id=_opt_str(raw, "recipient_id", path),
        recipient_user_id=_opt_str(raw, "recipient_user_id", path),
        biz_opaque_callback_data=_opt_str(raw, "biz_opaque_callback_data", path),
        conversation=_optional(raw, "conversation", dict, path),
        pricing=_optional(raw, "pricing", dict, path),
        errors=_errors(raw, path),
        request_id=_opt_id(raw, "idRequisicao", path) or request_id,
        raw=raw,
    )


# ---- type-specific data ----------------------------------------------------------------


def _text(content: Any, path: str, _: str) -> Text | None:
    content = _object(content, path)
    body = _opt_str(content, "body", path)
    return None if body is None else Text(body=body)


def _media(content: Any, path: str, kind: str) -> Media:
    content = _object(content, path)
    media_kind: MediaKind = kind  # type: ignore[assignment]  # only registered for MEDIA_KINDS
    return Media(
        kind=media_kind,
        id=_opt_str(content, "id", path),
        mime_type=_opt_str(content, "mime_type", path),
        sha256=_opt_str(content, "sha256", path),
        caption=_opt_str(content, "caption", path),
        filename=_opt_str(content, "filename", path),
        voice=_opt_bool(content, "voice", path),
        animated=_opt_bool(content, "animated", path),
        url=_opt_str(content, "url", path),
    )


def _location(content: Any, path: str, _: str) -> Location | None:
    content = _object(content, path)
    latitude = _opt_number(content, "latitude", path)
    longitude = _opt_number(content, "longitude", path)
    if latitude is None or longitude is None:
        return None
    return Location(
        latitude=latitude,
        longitude=longitude,
        name=_opt_str(content, "name", path),
        address=_opt_str(content, "address", path),
        url=_opt_str(content, "url", path),
    )


def _contacts(content: Any, path: str, _: str) -> Contacts:
    if not isinstance(content, list):
        _fail(path, f"expected an array, got {_describe(content)}")
    return Contacts(contacts=_objects(content, path))


def _interactive(content: Any, path: str, _: str) -> MessageData | _Unrecognised | None:
    content = _object(content, path)
    kind = _opt_str(content, "type", path)
    if kind is None:
        return None
    parser = _REPLY_PARSERS.get(kind)
    if parser is None:  # e.g. call_permission_reply: a calling feature, not an answer
        return _Unrecognised(f"interactive type {kind!r}")
    reply = _optional(content, kind, dict, path)
    return None if reply is None else parser(reply, f"{path}.{kind}")


def _button_reply(reply: dict[str, Any], path: str) -> ButtonReply | None:
    reply_id = _opt_str(reply, "id", path)
    if reply_id is None:
        return None
    return ButtonReply(id=reply_id, title=_opt_str(reply, "title", path) or "")


def _list_reply(reply: dict[str, Any], path: str) -> ListReply | None:
    reply_id = _opt_str(reply, "id", path)
    if reply_id is None:
        return None
    return ListReply(
        id=reply_id,
        title=_opt_str(reply, "title", path) or "",
        description=_opt_str(reply, "description", path),
    )


def _flow_reply(reply: dict[str, Any], path: str) -> FlowReply:
    return FlowReply(
        name=_opt_str(reply, "name", path),
        body=_opt_str(reply, "body", path),
        response_json=_opt_str(reply, "response_json", path),
    )


def _button(content: Any, path: str, _: str) -> TemplateButton:
    content = _object(content, path)
    return TemplateButton(
        payload=_opt_str(content, "payload", path), text=_opt_str(content, "text", path)
    )


def _reaction(content: Any, path: str, _: str) -> Reaction:
    content = _object(content, path)
    # Meta omits `emoji` when a reaction is removed; older payloads send "".
    return Reaction(
        message_id=_opt_str(content, "message_id", path),
        emoji=_opt_str(content, "emoji", path) or "",
    )


def _order(content: Any, path: str, _: str) -> Order:
    content = _object(content, path)
    items = _optional(content, "product_items", list, path)
    return Order(
        catalog_id=_opt_str(content, "catalog_id", path),
        text=_opt_str(content, "text", path),
        product_items=() if items is None else _objects(items, f"{path}.product_items"),
    )


def _system(content: Any, path: str, _: str) -> System:
    content = _object(content, path)
    return System(
        body=_opt_str(content, "body", path),
        type=_opt_str(content, "type", path),
        wa_id=_opt_str(content, "wa_id", path),
        new_wa_id=_opt_id(content, "new_wa_id", path),  # some senders typed it as a number
        user_id=_opt_str(content, "user_id", path),
    )


def _revoke(content: Any, path: str, _: str) -> Revoke:
    content = _object(content, path)
    return Revoke(original_message_id=_opt_str(content, "original_message_id", path))


_DataParser = Callable[[Any, str, str], MessageData | _Unrecognised | None]

_DATA_PARSERS: dict[str, _DataParser] = {
    "text": _text,
    "location": _location,
    "contacts": _contacts,
    "interactive": _interactive,
    "button": _button,
    "reaction": _reaction,
    "order": _order,
    "system": _system,
    "revoke": _revoke,
    **dict.fromkeys(MEDIA_KINDS, _media),
}

_REPLY_PARSERS: dict[str, Callable[[dict[str, Any], str], MessageData | None]] = {
    "button_reply": _button_reply,
    "list_reply": _list_reply,
    "nfm_reply": _flow_reply,
}


def _context(raw: dict[str, Any], path: str) -> Context | None:
    context = _optional(raw, "context", dict, path)
    if context is None:
        return None
    context_path = f"{path}.context"
    return Context(
        from_=_opt_str(context, "from", context_path),
        id=_opt_str(context, "id", context_path),
        forwarded=_opt_bool(context, "forwarded", context_path) or False,
        frequently_forwarded=_opt_bool(context, "frequently_forwarded", context_path) or False,
        referred_product=_optional(context, "referred_product", dict, context_path),
    )


def _errors(obj: dict[str, Any], path: str) -> tuple[ErrorDetail, ...]:
    errors = _optional(obj, "errors", list, path)
    if not errors:
        return ()
    errors_path = _join(path, "errors")
    return tuple(_error_detail(item, f"{errors_path}[{i}]") for i, item in enumerate(errors))


def _error_detail(item: Any, path: str) -> ErrorDetail:
    item = _object(item, path)
    code = item.get("code")
    if code is not None and not _is_int(code):
        if isinstance(code, str) and code.isascii() and code.isdigit() and len(code) < 19:
            code = int(code)
        else:
            _fail(f"{path}.code", f"expected an integer, got {_describe(code)}")
    error_data = _optional(item, "error_data", dict, path)
    return ErrorDetail(
        code=code,
        title=_opt_str(item, "title", path),
        message=_opt_str(item, "message", path),
        details=None
        if error_data is None
        else _opt_str(error_data, "details", f"{path}.error_data"),
        href=_opt_str(item, "href", path),
    )


# ---- field readers ---------------------------------------------------------------------
# Each reads one key of a JSON object: absent gives None, the right type gives the value,
# anything else (null included) is malformed and names its path.

_MISSING: Any = object()


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _fail(path: str, reason: str) -> NoReturn:
    raise WebhookFormatError(path, reason)


_TYPE_NAMES: dict[type[Any], str] = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
}


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if value is _MISSING:
        return "nothing"
    name = _TYPE_NAMES.get(type(value))
    if name is not None:
        return name
    if isinstance(value, (int, float)):
        return "a number"
    return f"a {type(value).__name__}"


_EXPECTED: dict[type[Any], str] = {dict: "an object", list: "an array", str: "a string"}


def _optional(obj: dict[str, Any], key: str, kind: type[Any], path: str) -> Any:
    value = obj.get(key, _MISSING)
    if isinstance(value, kind):
        return value
    if value is _MISSING:
        return None
    _fail(_join(path, key), f"expected {_EXPECTED[kind]}, got {_describe(value)}")


def _required(obj: dict[str, Any], key: str, kind: type[Any], path: str) -> Any:
    value = obj.get(key, _MISSING)
    if isinstance(value, kind):
        return value
    if value is _MISSING:
        _fail(_join(path, key), f"missing (expected {_EXPECTED[kind]})")
    _fail(_join(path, key), f"expected {_EXPECTED[kind]}, got {_describe(value)}")


def _opt_str(obj: dict[str, Any], key: str, path: str) -> str | None:
    value = obj.get(key, _MISSING)
    if isinstance(value, str):
        return value
    if value is _MISSING:
        return None
    _fail(_join(path, key), f"expected a string, got {_describe(value)}")


def _opt_id(obj: dict[str, Any], key: str, path: str) -> str | None:
    """An identifier that some senders write as a number."""
    value = obj.get(key, _MISSING)
    if isinstance(value, str):
        return value
    if value is _MISSING:
        return None
    if _is_int(value):
        return str(value)
    _fail(_join(path, key), f"expected a string, got {_describe(value)}")


def _opt_bool(obj: dict[str, Any], key: str, path: str) -> bool | None:
    value = obj.get(key, _MISSING)
    if value is True or value is False:
        return value
    if value is _MISSING:
        return None
    _fail(_join(path, key), f"expected true or false, got {_describe(value)}")


def _opt_number(obj: dict[str, Any], key: str, path: str) -> float | None:
    value = obj.get(key, _MISSING)
    if isinstance(value, float) or _is_int(value):
        return float(value)
    if value is _MISSING:
        return None
    _fail(_join(path, key), f"expected a number, got {_describe(value)}")


def _timestamp(obj: dict[str, Any], path: str) -> int | None:
    """Unix seconds: Meta sends a string of digits; an integer is accepted too."""
    value = obj.get("timestamp", _MISSING)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        seconds = int(value)
    elif _is_int(value):
        seconds = value
    elif value is _MISSING:
        return None
    else:
        got = f"{value[:20]!r}" if isinstance(value, str) else _describe(value)
        _fail(_join(path, "timestamp"), f"expected a string of digits, got {got}")
    if not 0 <= seconds <= _MAX_TIMESTAMP:
        _fail(_join(path, "timestamp"), "not a Unix time (out of range)")
    return seconds


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        _fail(path, f"expected an object, got {_describe(value)}")
    return value


def _objects(items: list[Any], path: str) -> tuple[dict[str, Any], ...]:
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            _fail(f"{path}[{i}]", f"expected an object, got {_describe(item)}")
    return tuple(items)
