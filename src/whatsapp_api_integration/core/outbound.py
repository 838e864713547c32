"""Bot responses in, WhatsApp request bodies out (DESIGN §8 and §9).

Three steps, each pure:

1. `render` shapes Rasa-style responses (`text`, `buttons`, `quick_replies`, `image`,
   `attachment`, `custom`) into provider-neutral messages that respect every WhatsApp limit
   (`limits`), following DESIGN §8's rules. Nothing the bot meant is dropped: long text is
   split, too many options become several lists, long titles move to the description, long
   or repeated payloads become references (`payload_refs`) the pipeline stores and resolves.
2. `to_cloud_api` writes one message as a Graph `/messages` JSON body.
3. `to_serpro` writes one message as a SERPRO request (path and body).

`check_cloud_api` lists every limit a Graph body breaks; the tests hold `render` to it.

Decisions DESIGN leaves open, made here:
- Buttons carrying a `description` become a list, since reply buttons cannot show one. When a
  row title is shortened and the button already had a description, the row's description is
  "<full title> — <description>", shortened to 72: the full title comes first because it is
  what the contact chose.
- Titles are compared case-insensitively when made unique (Meta does not say how it compares;
  this is the safer reading). A title that needs a suffix ("Sim (2)") and then no longer fits
  a reply button turns the message into a list, where it can be shortened.
- A response with an image and buttons sends the image first, then the interactive message
  with the text, so the question and its options come last. Without buttons, the text rides
  as the caption when it fits (DESIGN §8 rule 6), else it goes first and the image follows.
- A blank text (only whitespace) is not sent: WhatsApp rejects it. A warning says so.
- SERPRO has no known field for an interactive header or footer; they are not sent there.
  A `custom` message goes to SERPRO only when it is already a SERPRO request
  (`{"path": "/requisicao/...", "body": {...}}`); anything else raises
  `UnsupportedMessageError`, because guessing a translation could send the wrong thing.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from whatsapp_api_integration.core import limits
from whatsapp_api_integration.core.events import MEDIA_KINDS, MediaKind, Recipient
from whatsapp_api_integration.core.limits import fits, utf16_len
from whatsapp_api_integration.core.text import shorten, split_text

# ---- provider-neutral messages ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextMessage:
    body: str
    preview_url: bool = False


@dataclass(frozen=True, slots=True)
class Choice:
    """One reply button or list row. `id` comes back in the contact's reply."""

    id: str
    title: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ReplyButtons:
    body: str
    choices: tuple[Choice, ...]
    header: str | None = None
    footer: str | None = None


@dataclass(frozen=True, slots=True)
class ListSection:
    title: str | None
    rows: tuple[Choice, ...]


@dataclass(frozen=True, slots=True)
class ListMessage:
    body: str
    button_label: str
    sections: tuple[ListSection, ...]
    header: str | None = None
    footer: str | None = None


@dataclass(frozen=True, slots=True)
class MediaMessage:
    """A media message by `link` (HTTP/S URL) or by `media_id` (an uploaded media's id)."""

    kind: MediaKind
    link: str | None = None
    media_id: str | None = None
    caption: str | None = None
    filename: str | None = None  # documents only

    def __post_init__(self) -> None:
        if self.kind not in MEDIA_KINDS:
            raise ValueError(f"unknown media kind {self.kind!r}; expected one of {MEDIA_KINDS}")
        if not self.link and not self.media_id:
            raise ValueError("a media message needs a link or a media id")


@dataclass(frozen=True, slots=True)
class LocationRequest:
    """Asks the contact to share a location; the answer comes back as a `location` message."""

    body: str


@dataclass(frozen=True, slots=True)
class TemplateMessage:
    """A template. `components` are in the Cloud API's shape (`type`, `parameters`, ...)."""

    name: str
    language: str
    components: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class CustomMessage:
    """A body the bot wrote itself (Rasa's `custom`), sent as given."""

    payload: Mapping[str, Any]


OutgoingMessage = (
    TextMessage
    | ReplyButtons
    | ListMessage
    | MediaMessage
    | LocationRequest
    | TemplateMessage
    | CustomMessage
)


class UnsupportedMessageError(ValueError):
    """The message cannot be expressed for this provider (e.g. a Graph-only custom body)."""


# ---- render ---------------------------------------------------------------------------------


DEFAULT_LIST_BUTTON_LABEL = "Opções"
DEFAULT_INTERACTIVE_FALLBACK_BODY = "Escolha uma opção:"
DEFAULT_MORE_OPTIONS_BODY = "Mais opções:"


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """The texts DESIGN §3 makes settings (the setting's name is in each comment)."""

    list_button_label: str = DEFAULT_LIST_BUTTON_LABEL  # LIST_BUTTON_LABEL
    interactive_fallback_body: str = DEFAULT_INTERACTIVE_FALLBACK_BODY  # INTERACTIVE_FALLBACK_BODY
    more_options_body: str = DEFAULT_MORE_OPTIONS_BODY  # MORE_OPTIONS_BODY


@dataclass(frozen=True, slots=True)
class RenderResult:
    messages: tuple[OutgoingMessage, ...]
    # reference id -> the original payload; the pipeline stores these and, when a reply's id
    # is one of them (`is_payload_ref`), hands the backend the payload instead.
    payload_refs: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


RESPONSE_KEYS = frozenset({"text", "buttons", "quick_replies", "image", "attachment", "custom"})
# Rasa's REST channel adds the recipient to every response; it is not content.
SILENT_RESPONSE_KEYS = frozenset({"recipient_id"})
UNTITLED_OPTION = "Opção {}"
REF_PREFIX = "ref:"
_REF_HASH_LENGTH = 20  # hex digits of SHA-256: 80 bits, short and collision-free in practice
_REF_PATTERN = re.compile(rf"{REF_PREFIX}[0-9a-f]{{{_REF_HASH_LENGTH}}}(?:\.[0-9]+)?")
_TITLE_DESCRIPTION_SEPARATOR = " — "


def is_payload_ref(choice_id: str) -> bool:
    """Whether a reply's id is one of our payload references (DESIGN §8 rule 4).

    A bot payload that merely looks like a reference is itself replaced by one, so a match
    always means: look the original payload up.
    """
    return _REF_PATTERN.fullmatch(choice_id) is not None


def payload_ref(payload: str, occurrence: int = 1) -> str:
    """The stable reference id of `payload`; later occurrences in one message get `.2`, `.3`."""
    digest = hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()
    ref = REF_PREFIX + digest[:_REF_HASH_LENGTH]
    return ref if occurrence == 1 else f"{ref}.{occurrence}"


def render(
    responses: Sequence[Mapping[str, Any]], options: RenderOptions = RenderOptions()
) -> RenderResult:
    """Shape bot responses into messages that fit WhatsApp, in the order they are to be sent."""
    renderer = _Renderer(options)
    for index, response in enumerate(responses):
        renderer.response(index, response)
    return RenderResult(
        messages=tuple(renderer.messages),
        payload_refs=renderer.refs,
        warnings=tuple(renderer.warnings),
    )


@dataclass(slots=True)
class _Option:
    """A button as the bot meant it: what to show, what to send back, what to explain."""

    title: str  # whitespace collapsed, never empty
    value: str  # the payload as a string; the title when the bot gave none
    description: str | None = None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _as_text(value: Any) -> str | None:
    """A payload or title as a string: `0` stays "0", JSON values become JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return str(value)


def _is_url(value: str) -> bool:
    return value[:8].lower().startswith(("http://", "https://"))


_PERCENT_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")


def _filename_from_url(url: str) -> str | None:
    """The URL's last path segment, percent-decoded, when it looks like a file name.

    Done by hand: the core's purity test keeps `urllib` (a network package) out of the core.
    """
    path = url.split("#", 1)[0].split("?", 1)[0].split("://", 1)[-1]
    if "/" not in path:
        return None
    raw = path.rsplit("/", 1)[-1].encode("utf-8", "surrogatepass")
    name = _PERCENT_ESCAPE.sub(lambda match: bytes([int(match[1], 16)]), raw)
    decoded = name.decode("utf-8", "replace")
    return decoded if "." in decoded.strip(".") else None


class _Renderer:
    def __init__(self, options: RenderOptions) -> None:
        self.messages: list[OutgoingMessage] = []
        self.refs: dict[str, str] = {}
        self.warnings: list[str] = []
        # Configured texts are held to the limits too, so a long setting cannot break a send.
        self.button_label = shorten(
            _one_line(options.list_button_label) or DEFAULT_LIST_BUTTON_LABEL,
            limits.LIST_BUTTON_LABEL_MAX,
        )
        self.fallback_body = shorten(
            options.interactive_fallback_body.strip() or DEFAULT_INTERACTIVE_FALLBACK_BODY,
            limits.INTERACTIVE_BODY_MAX,
        )
        self.more_options_body = shorten(
            options.more_options_body.strip() or DEFAULT_MORE_OPTIONS_BODY,
            limits.INTERACTIVE_BODY_MAX,
        )

    def warn(self, where: str, what: str) -> None:
        self.warnings.append(f"{where}: {what}")

    # -- one response --

    def response(self, index: int, response: Any) -> None:
        where = f"response[{index}]"
        if not isinstance(response, Mapping):
            self.warn(where, f"expected an object, got {type(response).__name__}; ignored")
            return
        for key in response:
            if key not in RESPONSE_KEYS and key not in SILENT_RESPONSE_KEYS:
                self.warn(where, f"unknown key {key!r} ignored")
        text = self.text_of(where, response.get("text"))
        choices = [
            *self.options_of(f"{where}.buttons", response.get("buttons")),
            *self.options_of(f"{where}.quick_replies", response.get("quick_replies")),
        ]
        image = self.media_of(f"{where}.image", response.get("image"), "image")
        if choices:
            if image:
                self.media_with_text(f"{where}.image", image, None)
            self.interactive(where, text, choices)
        elif image:
            self.media_with_text(where, image, text)
        elif text is not None:
            self.text(where, text)
        custom = response.get("custom")
        if isinstance(custom, Mapping):
            self.messages.append(CustomMessage(payload=custom))
        elif custom is not None:
            self.warn(f"{where}.custom", f"expected an object, got {type(custom).__name__}")
        attachment = self.media_of(f"{where}.attachment", response.get("attachment"), "document")
        if attachment:
            self.media_with_text(f"{where}.attachment", attachment, None)

    def text_of(self, where: str, value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, (int, float)):
            return _as_text(value)
        self.warn(f"{where}.text", f"expected a string, got {type(value).__name__}; ignored")
        return None

    # -- text and media --

    def text(self, where: str, text: str) -> None:
        parts = split_text(text, limits.TEXT_BODY_MAX)
        if not parts:
            self.warn(f"{where}.text", "blank text not sent")
        self.messages.extend(TextMessage(body=part) for part in parts)

    def media_with_text(self, where: str, media: MediaMessage, text: str | None) -> None:
        captioned = media.kind not in ("audio", "sticker")
        if media.caption is not None and not (
            captioned and fits(media.caption, limits.MEDIA_CAPTION_MAX)
        ):
            self.text(where, media.caption)  # a caption it cannot carry goes first, as text
            media = replace(media, caption=None)
        if text is not None and text.strip():
            if captioned and media.caption is None and fits(text, limits.MEDIA_CAPTION_MAX):
                media = replace(media, caption=text)
            else:
                self.text(where, text)
        self.messages.append(media)

    def media_of(self, where: str, value: Any, default_kind: MediaKind) -> MediaMessage | None:
        """Rasa sends `image`/`attachment` as a URL (or media id) string, or as an object."""
        if value is None:
            return None
        if isinstance(value, str):
            reference = value.strip()
            if not reference:
                self.warn(where, "empty; ignored")
                return None
            if _is_url(reference):
                filename = _filename_from_url(reference) if default_kind == "document" else None
                return MediaMessage(kind=default_kind, link=reference, filename=filename)
            return MediaMessage(kind=default_kind, media_id=reference)
        if isinstance(value, Mapping):
            return self.media_of_object(where, value, default_kind)
        self.warn(where, f"expected a URL or an object, got {type(value).__name__}; ignored")
        return None

    def media_of_object(
        self, where: str, value: Mapping[str, Any], default_kind: MediaKind
    ) -> MediaMessage | None:
        # Shapes seen from Rasa bots: {"url"|"link"|"src", "filename"|"name", "caption", "type"},
        # and Messenger-style {"type": "file", "payload": {"url"|"src"}}.
        nested = value.get("payload")
        sources = [value, nested] if isinstance(nested, Mapping) else [value]

        def first(*keys: str) -> str | None:
            for source in sources:
                for key in keys:
                    found = source.get(key)
                    if isinstance(found, str) and found.strip():
                        return found.strip()
            return None

        kind_name = first("type", "media_type")
        kind: MediaKind = default_kind
        if kind_name in MEDIA_KINDS:
            kind = kind_name
        elif kind_name == "file":
            kind = "document"
        link = first("url", "link", "src", "href")
        media_id = first("id", "media_id")
        if link is not None and not _is_url(link):
            link, media_id = None, media_id or link
        if not link and not media_id:
            self.warn(where, "no URL or media id found; ignored")
            return None
        filename = first("filename", "name", "title") if kind == "document" else None
        if kind == "document" and filename is None and link:
            filename = _filename_from_url(link)
        caption = first("caption")
        return MediaMessage(kind, link=link, media_id=media_id, caption=caption, filename=filename)

    # -- buttons --

    def options_of(self, where: str, value: Any) -> list[_Option]:
        if value is None:
            return []
        if not isinstance(value, Sequence) or isinstance(value, str):
            self.warn(where, f"expected a list, got {type(value).__name__}; ignored")
            return []
        found = []
        for position, button in enumerate(value):
            option = self.option_of(f"{where}[{position}]", button, position + 1)
            if option is not None:
                found.append(option)
        return found

    def option_of(self, where: str, button: Any, number: int) -> _Option | None:
        if isinstance(button, Mapping):
            title, payload = _as_text(button.get("title")), _as_text(button.get("payload"))
            description = _as_text(button.get("description"))
        elif button is not None and not isinstance(button, (list, tuple)):
            title, payload, description = _as_text(button), None, None
        else:
            self.warn(where, f"expected an object, got {type(button).__name__}; ignored")
            return None
        value = payload if payload else None  # "" is no payload; 0 became "0" and stays
        shown = _one_line(title or "") or _one_line(value or "") or UNTITLED_OPTION.format(number)
        description = _one_line(description or "") or None
        return _Option(
            title=shown, value=value if value is not None else shown, description=description
        )

    def interactive(self, where: str, text: str | None, choices: list[_Option]) -> None:
        body = text if text is not None and text.strip() else None
        if body is not None and not fits(body, limits.INTERACTIVE_BODY_MAX):
            self.text(where, body)  # rule 5: the text goes first, on its own
            body = None
        first_body = body if body is not None else self.fallback_body
        buttons = self.reply_buttons(choices)
        if buttons is not None:
            self.messages.append(ReplyButtons(body=first_body, choices=buttons))
            return
        for start in range(0, len(choices), limits.LIST_ROWS_MAX):
            rows = self.list_rows(choices[start : start + limits.LIST_ROWS_MAX])
            self.messages.append(
                ListMessage(
                    body=first_body if start == 0 else self.more_options_body,
                    button_label=self.button_label,
                    sections=(ListSection(title=None, rows=rows),),
                )
            )

    def reply_buttons(self, choices: list[_Option]) -> tuple[Choice, ...] | None:
        """The choices as reply buttons, or None when they need a list (DESIGN §8 rule 2)."""
        if not limits.REPLY_BUTTONS_MIN <= len(choices) <= limits.REPLY_BUTTONS_MAX:
            return None
        if any(choice.description for choice in choices):
            return None
        titles = _unique([choice.title for choice in choices], limit=None)
        if not all(fits(title, limits.REPLY_BUTTON_TITLE_MAX) for title in titles):
            return None
        ids = self.ids(choices, limits.REPLY_BUTTON_ID_MAX)
        return tuple(Choice(id=i, title=t) for i, t in zip(ids, titles, strict=True))

    def list_rows(self, choices: list[_Option]) -> tuple[Choice, ...]:
        titles, descriptions = [], []
        for choice in choices:
            title, description = choice.title, choice.description
            if not fits(title, limits.LIST_ROW_TITLE_MAX):
                description = (
                    title + _TITLE_DESCRIPTION_SEPARATOR + description if description else title
                )
                title = shorten(title, limits.LIST_ROW_TITLE_MAX)
            titles.append(title)
            descriptions.append(
                shorten(description, limits.LIST_ROW_DESCRIPTION_MAX) if description else None
            )
        titles = _unique(titles, limit=limits.LIST_ROW_TITLE_MAX)
        ids = self.ids(choices, limits.LIST_ROW_ID_MAX)
        return tuple(Choice(*row) for row in zip(ids, titles, descriptions, strict=True))

    def ids(self, choices: list[_Option], limit: int) -> list[str]:
        """Each choice's payload as its id, unless it must be a reference (rule 4)."""
        used: set[str] = set()
        ids = []
        for choice in choices:
            value = choice.value
            if (
                value in used
                or not fits(value, limit)
                or value != value.strip()
                or is_payload_ref(value)
            ):
                occurrence = 1
                value = payload_ref(choice.value)
                while value in used:
                    occurrence += 1
                    value = payload_ref(choice.value, occurrence)
                self.refs[value] = choice.value
            used.add(value)
            ids.append(value)
        return ids


def _unique(titles: list[str], limit: int | None) -> list[str]:
    """Titles made unique (case-insensitively) with " (2)", " (3)"...; shortened to `limit`."""
    seen: set[str] = set()
    unique = []
    for title in titles:
        candidate, number = title, 1
        while candidate.casefold() in seen:
            number += 1
            suffix = f" ({number})"
            base = title if limit is None else shorten(title, limit - len(suffix))
            candidate = base + suffix
        seen.add(candidate.casefold())
        unique.append(candidate)
    return unique


# ---- Cloud API (Graph /messages) --------------------------------------------------------------


def _cloud_envelope(recipient: Recipient, reply_to: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    if recipient.wa_id:
        body["to"] = recipient.wa_id
    else:  # DESIGN §6: a contact known only by its business-scoped user id
        body["recipient"] = recipient.user_id
    if reply_to:
        body["context"] = {"message_id": reply_to}
    return body


def _cloud_interactive(
    kind: str, body: str, header: str | None, footer: str | None, action: dict[str, Any]
) -> dict[str, Any]:
    interactive: dict[str, Any] = {"type": kind}
    if header:  # never an empty header or footer: Meta rejects them
        interactive["header"] = {"type": "text", "text": header}
    interactive["body"] = {"text": body}
    if footer:
        interactive["footer"] = {"text": footer}
    interactive["action"] = action
    return interactive


def _cloud_row(row: Choice) -> dict[str, Any]:
    out = {"id": row.id, "title": row.title}
    if row.description:
        out["description"] = row.description
    return out


def _cloud_section(section: ListSection) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if section.title:
        out["title"] = section.title
    out["rows"] = [_cloud_row(row) for row in section.rows]
    return out


def _cloud_content(message: OutgoingMessage) -> tuple[str, dict[str, Any]]:
    """The `type` and the object keyed by it."""
    if isinstance(message, TextMessage):
        return "text", {"preview_url": message.preview_url, "body": message.body}
    if isinstance(message, ReplyButtons):
        buttons = [
            {"type": "reply", "reply": {"id": choice.id, "title": choice.title}}
            for choice in message.choices
        ]
        action: dict[str, Any] = {"buttons": buttons}
        return "interactive", _cloud_interactive(
            "button", message.body, message.header, message.footer, action
        )
    if isinstance(message, ListMessage):
        sections = [_cloud_section(section) for section in message.sections]
        action = {"button": message.button_label, "sections": sections}
        return "interactive", _cloud_interactive(
            "list", message.body, message.header, message.footer, action
        )
    if isinstance(message, MediaMessage):
        media: dict[str, Any] = {"link": message.link} if message.link else {"id": message.media_id}
        if message.caption:
            media["caption"] = message.caption
        if message.filename and message.kind == "document":
            media["filename"] = message.filename
        return message.kind, media
    if isinstance(message, LocationRequest):
        action = {"name": "send_location"}
        return "interactive", _cloud_interactive(
            "location_request_message", message.body, None, None, action
        )
    if isinstance(message, TemplateMessage):
        template: dict[str, Any] = {"name": message.name, "language": {"code": message.language}}
        if message.components:
            template["components"] = [copy.deepcopy(dict(c)) for c in message.components]
        return "template", template
    raise TypeError(f"not an outgoing message: {message!r}")


def to_cloud_api(
    message: OutgoingMessage, recipient: Recipient, *, reply_to: str | None = None
) -> dict[str, Any]:
    """The JSON body of `POST /{version}/{phone-number-id}/messages` for one message.

    `reply_to` (a wamid) quotes that message. A custom message is sent as the bot wrote it,
    with `messaging_product` and the recipient added when it has none.
    """
    if isinstance(message, CustomMessage):
        body = copy.deepcopy(dict(message.payload))
        body.setdefault("messaging_product", "whatsapp")
        if "to" not in body and "recipient" not in body:
            body.update(
                {k: v for k, v in _cloud_envelope(recipient, None).items() if k not in body}
            )
        if reply_to and "context" not in body:
            body["context"] = {"message_id": reply_to}
        return body
    body = _cloud_envelope(recipient, reply_to)
    kind, content = _cloud_content(message)
    body["type"] = kind
    body[kind] = content
    return body


# ---- checking a Graph body against the limits -----------------------------------------------


class _Checker:
    """Collects readable limit violations, each prefixed with where it is in the body."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")

    def obj(self, where: str, value: Any) -> Mapping[str, Any] | None:
        if isinstance(value, Mapping):
            return value
        self.fail(where, f"expected an object, got {_json_type(value)}")
        return None

    def array(self, where: str, value: Any) -> Sequence[Any] | None:
        if isinstance(value, (list, tuple)):
            return value
        self.fail(where, f"expected an array, got {_json_type(value)}")
        return None

    def text(self, where: str, value: Any, limit: int, *, required: bool = True) -> str | None:
        if value is None and not required:
            return None
        if not isinstance(value, str):
            self.fail(where, f"expected a string, got {_json_type(value)}")
            return None
        if not value.strip():
            self.fail(where, "must not be empty")
        elif not fits(value, limit):
            self.fail(where, f"{utf16_len(value)} characters, over the limit of {limit}")
        return value

    def optional_text_object(self, parent: Mapping[str, Any], key: str, limit: int) -> None:
        """`header`/`footer`: absent is fine; present, it needs a non-empty text that fits."""
        if key not in parent:
            return
        value = self.obj(f"interactive.{key}", parent[key])
        if value is not None and value.get("type", "text") == "text":
            self.text(f"interactive.{key}.text", value.get("text"), limit)

    def ids_unique(self, where: str, ids: list[str], what: str) -> None:
        seen: set[str] = set()
        for value in ids:
            if value in seen:
                self.fail(where, f"{what} {value!r} is repeated")
            seen.add(value)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return type(value).__name__


def check_cloud_api(body: Mapping[str, Any]) -> list[str]:
    """Every WhatsApp limit a Graph `/messages` body breaks, as readable strings.

    An empty list means the body respects every limit in `limits`. Types the checker does not
    model (contacts, reactions, ...) get the envelope checks only.
    """
    check = _Checker()
    if not isinstance(body, Mapping):
        check.fail("body", f"expected an object, got {_json_type(body)}")
        return check.problems
    if body.get("messaging_product") != "whatsapp":
        check.fail("messaging_product", "must be 'whatsapp'")
    if not body.get("to") and not body.get("recipient"):
        check.fail("to", "a recipient is required (`to` or `recipient`)")
    kind = body.get("type", "text")
    if not isinstance(kind, str):
        check.fail("type", f"expected a string, got {_json_type(kind)}")
        return check.problems
    if kind not in body:
        check.fail(kind, f"missing the {kind!r} object")
        return check.problems
    content = check.obj(kind, body[kind])
    if content is None:
        return check.problems
    if kind == "text":
        check.text("text.body", content.get("body"), limits.TEXT_BODY_MAX)
    elif kind == "interactive":
        _check_interactive(check, content)
    elif kind in MEDIA_KINDS:
        _check_media(check, kind, content)
    elif kind == "template":
        check.text("template.name", content.get("name"), 512)
        language = check.obj("template.language", content.get("language"))
        if language is not None:
            check.text("template.language.code", language.get("code"), 16)
    callback = body.get("biz_opaque_callback_data")
    if callback is not None:
        check.text("biz_opaque_callback_data", callback, limits.BIZ_OPAQUE_CALLBACK_DATA_MAX)
    return check.problems


def _check_media(check: _Checker, kind: str, content: Mapping[str, Any]) -> None:
    if not content.get("id") and not content.get("link"):
        check.fail(kind, "needs an `id` or a `link`")
    if "caption" in content:
        if kind in ("audio", "sticker"):
            check.fail(f"{kind}.caption", f"{kind} messages take no caption")
        else:
            check.text(f"{kind}.caption", content["caption"], limits.MEDIA_CAPTION_MAX)


def _check_interactive(check: _Checker, content: Mapping[str, Any]) -> None:
    kind = content.get("type")
    body = check.obj("interactive.body", content.get("body"))
    if body is not None:
        check.text("interactive.body.text", body.get("text"), limits.INTERACTIVE_BODY_MAX)
    check.optional_text_object(content, "header", limits.HEADER_TEXT_MAX)
    check.optional_text_object(content, "footer", limits.FOOTER_TEXT_MAX)
    action = check.obj("interactive.action", content.get("action"))
    if action is None:
        return
    if kind == "button":
        _check_reply_buttons(check, action)
    elif kind == "list":
        _check_list(check, action)
    elif kind == "location_request_message":
        if action.get("name") != "send_location":
            check.fail("interactive.action.name", "must be 'send_location'")
    else:
        check.fail("interactive.type", f"unknown interactive type {kind!r}")


def _check_id(check: _Checker, where: str, value: Any, limit: int) -> str | None:
    found = check.text(where, value, limit)
    if found is not None and found != found.strip():
        check.fail(where, "must not start or end with whitespace")
    return found


def _check_reply_buttons(check: _Checker, action: Mapping[str, Any]) -> None:
    buttons = check.array("interactive.action.buttons", action.get("buttons"))
    if buttons is None:
        return
    if not limits.REPLY_BUTTONS_MIN <= len(buttons) <= limits.REPLY_BUTTONS_MAX:
        check.fail(
            "interactive.action.buttons",
            f"{len(buttons)} buttons; between {limits.REPLY_BUTTONS_MIN} and "
            f"{limits.REPLY_BUTTONS_MAX} allowed",
        )
    ids, titles = [], []
    for index, item in enumerate(buttons):
        where = f"interactive.action.buttons[{index}]"
        button = check.obj(where, item)
        if button is None:
            continue
        if button.get("type") != "reply":
            check.fail(f"{where}.type", "must be 'reply'")
        reply = check.obj(f"{where}.reply", button.get("reply"))
        if reply is None:
            continue
        found_id = _check_id(
            check, f"{where}.reply.id", reply.get("id"), limits.REPLY_BUTTON_ID_MAX
        )
        title = check.text(
            f"{where}.reply.title", reply.get("title"), limits.REPLY_BUTTON_TITLE_MAX
        )
        if found_id is not None:
            ids.append(found_id)
        if title is not None:
            titles.append(title.casefold())
    check.ids_unique("interactive.action.buttons", ids, "id")
    check.ids_unique("interactive.action.buttons", titles, "title")


def _check_list(check: _Checker, action: Mapping[str, Any]) -> None:
    check.text("interactive.action.button", action.get("button"), limits.LIST_BUTTON_LABEL_MAX)
    sections = check.array("interactive.action.sections", action.get("sections"))
    if sections is None:
        return
    if not 1 <= len(sections) <= limits.LIST_SECTIONS_MAX:
        check.fail(
            "interactive.action.sections",
            f"{len(sections)} sections; between 1 and {limits.LIST_SECTIONS_MAX} allowed",
        )
    ids, rows_in_all = [], 0
    for index, item in enumerate(sections):
        where = f"interactive.action.sections[{index}]"
        section = check.obj(where, item)
        if section is None:
            continue
        if len(sections) > 1 and section.get("title") is None:
            check.fail(f"{where}.title", "required when there is more than one section")
        else:
            check.text(
                f"{where}.title",
                section.get("title"),
                limits.LIST_SECTION_TITLE_MAX,
                required="title" in section,
            )
        rows = check.array(f"{where}.rows", section.get("rows"))
        if rows is None:
            continue
        rows_in_all += len(rows)
        if not rows:
            check.fail(f"{where}.rows", "a section needs at least one row")
        for row_index, row_item in enumerate(rows):
            row_where = f"{where}.rows[{row_index}]"
            row = check.obj(row_where, row_item)
            if row is None:
                continue
            found_id = _check_id(check, f"{row_where}.id", row.get("id"), limits.LIST_ROW_ID_MAX)
            if found_id is not None:
                ids.append(found_id)
            check.text(f"{row_where}.title", row.get("title"), limits.LIST_ROW_TITLE_MAX)
            check.text(
                f"{row_where}.description",
                row.get("description"),
                limits.LIST_ROW_DESCRIPTION_MAX,
                required="description" in row,
            )
    if rows_in_all > limits.LIST_ROWS_MAX:
        check.fail(
            "interactive.action.sections",
            f"{rows_in_all} rows in all; at most {limits.LIST_ROWS_MAX} allowed",
        )
    check.ids_unique("interactive.action.sections", ids, "row id")


# ---- SERPRO ------------------------------------------------------------------------------------

# Request paths, relative to /client/{fromPhoneNumberId}/v2 (DESIGN §9.1). [C]: the original
# project's code that ran against SERPRO in production (shared/reference/original-project.md
# §2.2); [I]: seen only in third-party PHP clients. A wrong path is a one-line fix here.
SERPRO_TEXT_PATH = "/requisicao/mensagem/texto"  # [C]
SERPRO_BUTTONS_PATH = "/requisicao/mensagem/interativa-botoes"  # [C]
SERPRO_LIST_PATH = "/requisicao/mensagem/interativa-lista"  # [C]
SERPRO_LOCATION_REQUEST_PATH = "/requisicao/mensagem/interativa-localizacao"  # [I]
SERPRO_MEDIA_PATH = "/requisicao/mensagem/media"  # [I]
SERPRO_TEMPLATE_PATH = "/requisicao/mensagem/template"  # path [I]; body shape [C]
# tipoMedia values SERPRO's clients send [I]; stickers are not among them.
SERPRO_MEDIA_KINDS = frozenset({"image", "video", "audio", "document"})


@dataclass(frozen=True, slots=True)
class SerproRequest:
    path: str  # relative to /client/{fromPhoneNumberId}/v2, e.g. "/requisicao/mensagem/texto"
    body: dict[str, Any]


def serpro_recipient(recipient: Recipient) -> str:
    """`destinatario`: "+<wa_id>" as the original sent it (DESIGN §6), else the BSUID."""
    if recipient.wa_id:
        return "+" + recipient.wa_id.lstrip("+")
    return recipient.user_id or ""


def to_serpro(
    message: OutgoingMessage,
    recipient: Recipient,
    *,
    waba_id: str | None = None,
    reply_to: str | None = None,
) -> SerproRequest:
    """The SERPRO request for one message (DESIGN §9.1).

    `waba_id` is added as `wabaId` when given (the original sent it; SERPRO tolerates it);
    `reply_to` (a wamid) as `message_id` [I]. Raises `UnsupportedMessageError` for what
    SERPRO cannot take (stickers, a custom body that is not a SERPRO request, template
    parameters it has no field for).
    """
    destination = serpro_recipient(recipient)
    if isinstance(message, TemplateMessage):
        return SerproRequest(SERPRO_TEMPLATE_PATH, _serpro_template(message, destination, waba_id))
    if isinstance(message, CustomMessage):
        return _serpro_custom(message, destination)
    path, content = _serpro_content(message)
    body: dict[str, Any] = {"destinatario": destination, **content}
    if waba_id:
        body["wabaId"] = waba_id
    if reply_to:
        body["message_id"] = reply_to
    return SerproRequest(path, body)


def _serpro_content(message: OutgoingMessage) -> tuple[str, dict[str, Any]]:
    if isinstance(message, TextMessage):
        return SERPRO_TEXT_PATH, {"body": message.body, "preview_url": message.preview_url}
    if isinstance(message, ReplyButtons):
        buttons = [{"id": choice.id, "titulo": choice.title} for choice in message.choices]
        return SERPRO_BUTTONS_PATH, {"textoBody": message.body, "buttons": buttons}
    if isinstance(message, ListMessage):
        sections = [
            {
                # The original sent the placeholder "foo"; a section is titled by its own
                # title, else by the list's button label.
                "titulo": section.title or message.button_label,
                # descricao "" is what the original sent, and SERPRO accepted it [C].
                "rows": [
                    {"id": row.id, "titulo": row.title, "descricao": row.description or ""}
                    for row in section.rows
                ],
            }
            for section in message.sections
        ]
        content = {"textoBody": message.body, "button": message.button_label, "secoes": sections}
        return SERPRO_LIST_PATH, content
    if isinstance(message, MediaMessage):
        if message.kind not in SERPRO_MEDIA_KINDS:
            raise UnsupportedMessageError(f"SERPRO does not send {message.kind} messages")
        media: dict[str, Any] = {"tipoMedia": message.kind}
        if message.link:
            media["linkMedia"] = message.link
        else:
            media["idMedia"] = message.media_id
        if message.caption:
            media["caption"] = message.caption
        if message.filename and message.kind == "document":
            media["filename"] = message.filename
        return SERPRO_MEDIA_PATH, media
    if isinstance(message, LocationRequest):
        return SERPRO_LOCATION_REQUEST_PATH, {"textoBody": message.body}
    raise TypeError(f"not an outgoing message: {message!r}")


def _serpro_custom(message: CustomMessage, destination: str) -> SerproRequest:
    path, body = message.payload.get("path"), message.payload.get("body")
    if not (isinstance(path, str) and path.startswith("/") and isinstance(body, Mapping)):
        raise UnsupportedMessageError(
            "a custom message for SERPRO must be a SERPRO request "
            '{"path": "/requisicao/...", "body": {...}}; this one looks like a Graph body, '
            "which SERPRO cannot take"
        )
    request_body = copy.deepcopy(dict(body))
    if "destinatarios" not in request_body:
        request_body.setdefault("destinatario", destination)
    return SerproRequest(path, request_body)


def _serpro_parameters(where: str, parameters: Any) -> list[dict[str, Any]]:
    converted = []
    for parameter in parameters or ():
        if not (isinstance(parameter, Mapping) and parameter.get("type") == "text"):
            raise UnsupportedMessageError(
                f"template {where}: SERPRO takes only text parameters, got {parameter!r}"
            )
        converted.append({"tipo": "text", "valor": parameter.get("text")})
    return converted


def _serpro_template(
    message: TemplateMessage, destination: str, waba_id: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"nomeTemplate": message.name}
    if waba_id:
        body["wabaId"] = waba_id
    body["destinatarios"] = [destination]
    for component in message.components:
        kind, parameters = component.get("type"), component.get("parameters")
        if kind == "body":
            body["body"] = {"parametros": _serpro_parameters("body", parameters)}
        elif kind == "header":
            body["header"] = _serpro_template_header(parameters)
        elif parameters:
            raise UnsupportedMessageError(
                f"template component {kind!r} with parameters has no SERPRO field"
            )
    return body


def _serpro_template_header(parameters: Any) -> dict[str, Any]:
    header: dict[str, Any] = {}
    texts = []
    for parameter in parameters or ():
        kind = parameter.get("type") if isinstance(parameter, Mapping) else None
        media = parameter.get(kind) if isinstance(kind, str) else None
        if kind in ("image", "video", "document") and isinstance(media, Mapping):
            if media.get("link"):
                header["linkMedia"] = media["link"]
            elif media.get("id"):
                header["idMedia"] = media["id"]
            if media.get("filename"):
                header["filename"] = media["filename"]
        else:
            texts.append(parameter)
    if texts:
        header["parametros"] = _serpro_parameters("header", texts)
    return header
