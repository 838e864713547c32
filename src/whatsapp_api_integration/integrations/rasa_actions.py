"""Helpers for Rasa custom actions (rasa_sdk): WhatsApp messages Rasa has no words for, and
the WhatsApp metadata of the message being handled.

Each builder returns the body of a Rasa `custom` response (`dispatcher.utter_message(
json_message=...)`) written by the same core that renders every reply, and checked against
WhatsApp's limits before it leaves the action: a list that breaks one raises ValueError naming
it, instead of a send WhatsApp refuses later. The body is in the shape of the provider the
contact writes through (Cloud API or SERPRO), which the `utter_*` helpers read from the
tracker::

    from whatsapp_api_integration.integrations.rasa_actions import utter_list, whatsapp_metadata

    class ActionChooseCity(Action):
        def name(self) -> str:
            return "action_choose_city"

        def run(self, dispatcher, tracker, domain):
            name = whatsapp_metadata(tracker).get("contact_name") or "Participante"
            utter_list(dispatcher, tracker, f"{name}, onde você mora?", [
                {"title": "Norte", "rows": [{"id": "/city{\\"c\\":\\"bel\\"}", "title": "Belém"}]},
                {"title": "Sul", "rows": [{"id": "poa", "title": "Porto Alegre"}]},
            ])
            return []

Only the standard library and our core are imported: rasa_sdk's objects are used by their
documented attributes (`tracker.latest_message`, `tracker.sender_id`,
`dispatcher.utter_message`), so an action server needs nothing more than this package.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from whatsapp_api_integration.core.events import MEDIA_KINDS, Recipient
from whatsapp_api_integration.core.outbound import (
    DEFAULT_LIST_BUTTON_LABEL,
    Choice,
    ListMessage,
    ListSection,
    LocationRequest,
    MediaMessage,
    OutgoingMessage,
    TemplateMessage,
    check_cloud_api,
    to_cloud_api,
    to_serpro,
)

# Stands in for a recipient while a body is written; the pipeline sets the real one.
_PLACEHOLDER = Recipient(wa_id="0")


class _Tracker(Protocol):
    @property
    def sender_id(self) -> str: ...

    @property
    def latest_message(self) -> Mapping[str, Any] | None: ...


class _Dispatcher(Protocol):
    def utter_message(self, *args: Any, **kwargs: Any) -> None: ...


# ---- metadata ---------------------------------------------------------------------------


def whatsapp_metadata(tracker: _Tracker) -> dict[str, Any]:
    """The WhatsApp metadata of the message being handled (DESIGN §7): `provider`,
    `phone_number_id`, `wa_id`, `user_id`, `contact_name`, `message_id`, `message_type`,
    `timestamp`, `context` and the type's data. Empty when the message did not come from
    WhatsApp (e.g. `rasa shell`)."""
    latest = tracker.latest_message or {}
    metadata = latest.get("metadata") if isinstance(latest, Mapping) else None
    return dict(metadata) if isinstance(metadata, Mapping) else {}


def contact_name(tracker: _Tracker, default: str | None = None) -> str | None:
    """The contact's WhatsApp profile name, else `default` (the original used "Participante")."""
    name = whatsapp_metadata(tracker).get("contact_name")
    return name if isinstance(name, str) and name.strip() else default


def whatsapp_provider(tracker: _Tracker) -> str:
    """`cloud_api` or `serpro`: which API the contact's messages come through."""
    return "serpro" if whatsapp_metadata(tracker).get("provider") == "serpro" else "cloud_api"


# ---- builders -----------------------------------------------------------------------------


def _checked(message: OutgoingMessage, what: str) -> None:
    problems = check_cloud_api(to_cloud_api(message, _PLACEHOLDER))
    if problems:
        raise ValueError(f"WhatsApp would refuse this {what}: " + "; ".join(problems))


def _body(
    message: OutgoingMessage, provider: str, destination: str | None = None
) -> dict[str, Any]:
    if provider == "serpro":
        request = to_serpro(message, Recipient(wa_id=destination) if destination else _PLACEHOLDER)
        body = dict(request.body)
        if not destination:
            body.pop("destinatario", None)
        return {"path": request.path, "body": body}
    body = to_cloud_api(message, _PLACEHOLDER)
    body.pop("to", None)
    return body


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def list_message(
    body: str,
    sections: Sequence[Mapping[str, Any]],
    *,
    button: str = DEFAULT_LIST_BUTTON_LABEL,
    header: str | None = None,
    footer: str | None = None,
    provider: str = "cloud_api",
) -> dict[str, Any]:
    """A list with sections: `[{"title": ..., "rows": [{"id", "title", "description"?}]}]`.

    WhatsApp allows 10 rows in all, 10 sections, titles of 24, descriptions of 72, ids of
    200 (unique), a button label of 20; a section title is required with 2+ sections."""
    built: list[ListSection] = []
    for number, section in enumerate(sections):
        where = f"sections[{number}]"
        rows = section.get("rows")
        if not isinstance(rows, Sequence) or isinstance(rows, str) or not rows:
            raise ValueError(f"{where}.rows: expected a non-empty list of rows")
        choices = []
        for index, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise ValueError(f"{where}.rows[{index}]: expected an object with id and title")
            row_id = row.get("id", row.get("payload"))
            description = row.get("description")
            choices.append(
                Choice(
                    id=_text(None if row_id is None else str(row_id), f"{where}.rows[{index}].id"),
                    title=_text(row.get("title"), f"{where}.rows[{index}].title"),
                    description=str(description) if description else None,
                )
            )
        title = section.get("title")
        built.append(ListSection(title=str(title) if title else None, rows=tuple(choices)))
    if not built:
        raise ValueError("sections: a list needs at least one section")
    message = ListMessage(
        body=_text(body, "body"),
        button_label=_text(button, "button"),
        sections=tuple(built),
        header=header,
        footer=footer,
    )
    _checked(message, "list")
    return _body(message, provider)


def location_request(body: str, *, provider: str = "cloud_api") -> dict[str, Any]:
    """Asks the contact to share a location; it comes back as `/whatsapp_location{...}`."""
    message = LocationRequest(body=_text(body, "body"))
    _checked(message, "location request")
    return _body(message, provider)


def template_message(
    name: str,
    language: str = "pt_BR",
    components: Sequence[Mapping[str, Any]] = (),
    *,
    provider: str = "cloud_api",
    destination: str | None = None,
) -> dict[str, Any]:
    """A template (the only message WhatsApp delivers outside the 24-hour window).
    `components` in the Cloud API's shape. SERPRO needs the `destination` (the wa_id)."""
    message = TemplateMessage(
        name=_text(name, "name"), language=_text(language, "language"), components=tuple(components)
    )
    if provider == "serpro" and not destination:
        raise ValueError("a SERPRO template needs the destination (the contact's wa_id)")
    return _body(message, provider, destination)


def media_message(
    kind: str,
    *,
    link: str | None = None,
    media_id: str | None = None,
    caption: str | None = None,
    filename: str | None = None,
    provider: str = "cloud_api",
) -> dict[str, Any]:
    """An image, video, audio, document or sticker, by link or by uploaded media id."""
    if kind not in MEDIA_KINDS:
        raise ValueError(f"kind: expected one of {', '.join(MEDIA_KINDS)}, got {kind!r}")
    message = MediaMessage(kind, link=link, media_id=media_id, caption=caption, filename=filename)
    _checked(message, f"{kind} message")
    return _body(message, provider)


# ---- sending from an action -------------------------------------------------------------


def utter_list(
    dispatcher: _Dispatcher,
    tracker: _Tracker,
    body: str,
    sections: Sequence[Mapping[str, Any]],
    **options: Any,
) -> None:
    payload = list_message(body, sections, provider=whatsapp_provider(tracker), **options)
    dispatcher.utter_message(json_message=payload)


def utter_location_request(dispatcher: _Dispatcher, tracker: _Tracker, body: str) -> None:
    dispatcher.utter_message(
        json_message=location_request(body, provider=whatsapp_provider(tracker))
    )


def utter_template(
    dispatcher: _Dispatcher,
    tracker: _Tracker,
    name: str,
    language: str = "pt_BR",
    components: Sequence[Mapping[str, Any]] = (),
) -> None:
    provider = whatsapp_provider(tracker)
    metadata = whatsapp_metadata(tracker)
    destination = metadata.get("wa_id") or tracker.sender_id.lstrip("+")
    payload = template_message(
        name, language, components, provider=provider, destination=str(destination)
    )
    dispatcher.utter_message(json_message=payload)


def utter_media(dispatcher: _Dispatcher, tracker: _Tracker, kind: str, **options: Any) -> None:
    payload = media_message(kind, provider=whatsapp_provider(tracker), **options)
    dispatcher.utter_message(json_message=payload)


__all__ = [
    "contact_name",
    "list_message",
    "location_request",
    "media_message",
    "template_message",
    "utter_list",
    "utter_location_request",
    "utter_media",
    "utter_template",
    "whatsapp_metadata",
    "whatsapp_provider",
]
