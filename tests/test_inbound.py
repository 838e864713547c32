"""core.inbound: what each part of a webhook becomes (DESIGN §5)."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from whatsapp_api_integration.core.events import (
    ButtonReply,
    Contacts,
    Edit,
    FlowReply,
    ListReply,
    Location,
    Media,
    Message,
    Order,
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
from whatsapp_api_integration.core.inbound import (
    WebhookFormatError,
    detect_provider,
    parse_document,
    parse_webhook,
)

pytestmark = pytest.mark.core

PNID = "106540352242922"
WA_ID = "5561987654321"
BSUID = "BR.13491208655302741918"


def message(type_: str = "text", content: Any = None, **fields: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "from": WA_ID,
        "from_user_id": BSUID,
        "id": "wamid.ONE",
        "timestamp": "1749416383",
        "type": type_,
    }
    if content is not None:
        raw[type_] = content
    elif type_ == "text":
        raw["text"] = {"body": "oi"}
    raw.update(fields)
    return {key: value for key, value in raw.items() if value is not None}


def value(**arrays: Any) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "556140041234", "phone_number_id": PNID},
        **arrays,
    }


def cloud(*values: dict[str, Any], field: str = "messages") -> dict[str, Any]:
    changes = [{"field": field, "value": v} for v in values]
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": changes}]}


def parse(document: Any, provider: Any = None) -> list[Any]:
    """parse_document, typed loosely so tests can read any event's fields."""
    return parse_document(document, provider)


def one_message(raw: dict[str, Any], contacts: list[Any] | None = None) -> Message:
    arrays: dict[str, Any] = {"messages": [raw]}
    if contacts is not None:
        arrays["contacts"] = contacts
    [event] = parse(cloud(value(**arrays)))
    assert isinstance(event, Message), event
    return event


def data_of(type_: str, content: Any, **fields: Any) -> Any:
    return one_message(message(type_, content, **fields)).data


# ---- envelope and common fields ----------------------------------------------------------


def test_common_fields_of_a_message() -> None:
    event = one_message(
        message(context={"from": "556140041234", "id": "wamid.PREV", "forwarded": True}),
        contacts=[{"profile": {"name": "Ana", "username": "@ana"}, "wa_id": WA_ID}],
    )
    assert event.provider == "cloud_api"
    assert (event.phone_number_id, event.display_phone_number) == (PNID, "556140041234")
    assert (event.id, event.timestamp, event.type) == ("wamid.ONE", 1749416383, "text")
    assert (event.from_, event.user_id) == (WA_ID, BSUID)
    assert (event.contact_name, event.username) == ("Ana", "@ana")
    assert event.context is not None
    assert (event.context.from_, event.context.id, event.context.forwarded) == (
        "556140041234",
        "wamid.PREV",
        True,
    )
    assert event.context.frequently_forwarded is False
    assert event.data == Text(body="oi")
    assert event.raw["id"] == "wamid.ONE"


def test_contact_is_matched_by_identity_never_by_position() -> None:
    contacts = [{"profile": {"name": "Someone else"}, "wa_id": "5511999999999"}]
    assert one_message(message(), contacts).contact_name is None


def test_contact_found_by_bsuid_when_the_phone_is_withheld() -> None:
    contacts = [{"profile": {"name": "Maria", "username": "@maria"}, "user_id": BSUID}]
    no_phone: dict[str, Any] = {"from": None}
    event = one_message(message(**no_phone), contacts)
    assert (event.from_, event.user_id, event.contact_name, event.username) == (
        None,
        BSUID,
        "Maria",
        "@maria",
    )
    assert event.contact_id == BSUID


def test_bsuid_comes_from_the_contact_when_the_message_omits_it() -> None:
    contacts = [{"profile": {"name": "Ana"}, "wa_id": WA_ID, "user_id": BSUID}]
    event = one_message(message(from_user_id=None), contacts)
    assert event.user_id == BSUID


def test_timestamp_as_integer_is_accepted() -> None:
    assert one_message(message(timestamp=1749416383)).timestamp == 1749416383


def test_missing_timestamp_is_none() -> None:
    assert one_message(message(timestamp=None)).timestamp is None


def test_referral_is_kept() -> None:
    referral = {"source_type": "ad", "source_id": "1", "ctwa_clid": "x"}
    assert one_message(message(referral=referral)).referral == referral


def test_message_errors_are_read() -> None:
    raw = message(
        "unsupported",
        {"type": "poll_creation"},
        errors=[{"code": 131051, "title": "Message type unknown", "error_data": {"details": "d"}}],
    )
    event = one_message(raw)
    assert event.data == Unsupported(unsupported_type="poll_creation")
    [error] = event.errors
    assert (error.code, error.title, error.details) == (131051, "Message type unknown", "d")


# ---- type-specific data --------------------------------------------------------------


def test_media_data() -> None:
    content: dict[str, Any] = {
        "id": "65463453",
        "mime_type": "application/pdf",
        "sha256": "abc=",
        "caption": "c",
        "filename": "f.pdf",
        "url": "https://lookaside.fbsbx.com/x",
    }
    assert data_of("document", content) == Media(kind="document", **content)
    audio = data_of("audio", {"id": "1", "mime_type": "audio/ogg", "voice": True})
    assert (audio.kind, audio.voice) == ("audio", True)
    assert data_of("sticker", {"id": "2", "animated": False}).animated is False
    assert data_of("image", {"id": "3"}).kind == "image"
    assert data_of("video", {"id": "4"}).kind == "video"


def test_location_data() -> None:
    content = {"latitude": -15.79, "longitude": -47, "name": "n", "address": "a", "url": "u"}
    assert data_of("location", content) == Location(-15.79, -47.0, "n", "a", "u")
    assert data_of("location", {"latitude": 1.5}) is None  # no longitude: nothing to answer


def test_contacts_data() -> None:
    cards = [{"name": {"formatted_name": "Ana"}, "phones": [{"phone": "+55 61"}]}, {}]
    assert data_of("contacts", cards) == Contacts(contacts=tuple(cards))


def test_interactive_replies() -> None:
    button = {"type": "button_reply", "button_reply": {"id": "0", "title": "Prefiro não dizer"}}
    assert data_of("interactive", button) == ButtonReply(id="0", title="Prefiro não dizer")
    row = {"type": "list_reply", "list_reply": {"id": "r", "title": "t", "description": "d"}}
    assert data_of("interactive", row) == ListReply(id="r", title="t", description="d")
    flow = {
        "type": "nfm_reply",
        "nfm_reply": {"name": "flow", "body": "Sent", "response_json": "{}"},
    }
    assert data_of("interactive", flow) == FlowReply(name="flow", body="Sent", response_json="{}")


def test_interactive_of_an_unknown_kind_is_unknown_with_its_message_id() -> None:
    raw = message("interactive", {"type": "call_permission_reply", "call_permission_reply": {}})
    [event] = parse(cloud(value(messages=[raw])))
    assert isinstance(event, Unknown)
    assert (event.message_id, event.field) == ("wamid.ONE", "messages")
    assert "call_permission_reply" in event.reason


def test_interactive_without_its_object_or_reply_has_no_data() -> None:
    assert data_of("interactive", None) is None
    assert data_of("interactive", {"type": "button_reply"}) is None
    assert data_of("interactive", {"type": "button_reply", "button_reply": {"title": "t"}}) is None
    assert data_of("interactive", {}) is None


def test_template_button_reaction_order() -> None:
    assert data_of("button", {"payload": "p", "text": "t"}) == TemplateButton("p", "t")
    assert data_of("reaction", {"message_id": "wamid.X", "emoji": "👍"}) == Reaction(
        "wamid.X", "👍"
    )
    assert data_of("reaction", {"message_id": "wamid.X"}) == Reaction("wamid.X", "")
    items = [{"product_retailer_id": "a", "quantity": 1, "item_price": 9.9, "currency": "BRL"}]
    order = {"catalog_id": "c", "text": "t", "product_items": items}
    assert data_of("order", order) == Order("c", "t", tuple(items))


def test_system_messages() -> None:
    changed = {
        "body": "b",
        "type": "user_changed_number",
        "wa_id": "5561911112222",
        "user_id": "BR.2",
    }
    assert data_of("system", changed) == System(
        "b", "user_changed_number", "5561911112222", None, "BR.2"
    )
    legacy = {"body": "b", "type": "customer_changed_number", "new_wa_id": 5561911112222}
    assert data_of("system", legacy).new_wa_id == "5561911112222"


def test_edit_carries_the_new_version_as_a_message() -> None:
    content = {
        "original_message_id": "wamid.ORIGINAL",
        "message": {"type": "text", "text": {"body": "corrigido"}},
    }
    edit = data_of("edit", content)
    assert isinstance(edit, Edit)
    assert edit.original_message_id == "wamid.ORIGINAL"
    assert isinstance(edit.message, Message)
    assert edit.message.data == Text(body="corrigido")
    # what the new version omits comes from the edit around it
    assert (edit.message.id, edit.message.from_, edit.message.timestamp) == (
        "wamid.ORIGINAL",
        WA_ID,
        1749416383,
    )


def test_edit_of_an_unknown_type_or_nested_edit_has_no_message() -> None:
    unknown = {"original_message_id": "wamid.O", "message": {"type": "poll", "poll": {}}}
    assert data_of("edit", unknown) == Edit("wamid.O", None)
    nested = {
        "original_message_id": "wamid.O",
        "message": {"type": "edit", "edit": {"original_message_id": "wamid.P", "message": {}}},
    }
    inner = data_of("edit", nested).message
    assert inner.data == Edit("wamid.P", None)


def test_revoke_request_welcome_unsupported() -> None:
    assert data_of("revoke", {"original_message_id": "wamid.O"}) == Revoke("wamid.O")
    assert data_of("request_welcome", None) == Unsupported()
    assert data_of("unsupported", None) == Unsupported()


# ---- statuses, errors, other fields ------------------------------------------------------


def test_status_fields() -> None:
    raw = {
        "id": "wamid.OUT",
        "status": "sent",
        "timestamp": "1750263773",
        "recipient_id": WA_ID,
        "recipient_user_id": BSUID,
        "biz_opaque_callback_data": "job-1",
        "conversation": {"id": "c", "origin": {"type": "service"}},
        "pricing": {"billable": True, "category": "service"},
    }
    [status] = parse(cloud(value(statuses=[raw])))
    assert isinstance(status, Status)
    assert (status.id, status.status, status.timestamp) == ("wamid.OUT", "sent", 1750263773)
    assert (status.recipient_id, status.recipient_user_id) == (WA_ID, BSUID)
    assert status.biz_opaque_callback_data == "job-1"
    assert status.conversation == raw["conversation"]
    assert status.pricing == raw["pricing"]
    assert status.request_id is None


def test_any_status_string_is_kept_as_is() -> None:
    raw = {"id": "wamid.OUT", "status": "deleted", "timestamp": "1"}
    assert parse(cloud(value(statuses=[raw])))[0].status == "deleted"


def test_webhook_level_errors() -> None:
    errors = [{"code": 130429, "title": "Rate limit hit", "href": "h"}]
    [event] = parse(cloud(value(errors=errors)))
    assert isinstance(event, WebhookError)
    assert [(e.code, e.title, e.href) for e in event.errors] == [(130429, "Rate limit hit", "h")]
    assert event.phone_number_id == PNID


def test_error_code_as_digit_string_is_read() -> None:
    [event] = parse(cloud(value(errors=[{"code": "131000"}])))
    assert event.errors[0].code == 131000


def test_other_fields_become_unknown_with_the_number_they_concern() -> None:
    body = cloud(value(user_preferences=[{"wa_id": WA_ID}]), field="user_preferences")
    [event] = parse(body)
    assert isinstance(event, Unknown)
    assert (event.field, event.phone_number_id, event.message_id) == (
        "user_preferences",
        PNID,
        None,
    )
    assert event.raw["field"] == "user_preferences"


def test_unknown_change_needs_no_value() -> None:
    body = {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "x"}]}]}
    [event] = parse(body)
    assert isinstance(event, Unknown)
    assert event.phone_number_id is None


def test_another_meta_product_is_unknown_not_malformed() -> None:
    [event] = parse({"object": "instagram", "entry": "whatever"})
    assert isinstance(event, Unknown)
    assert event.reason == "object 'instagram'"


def test_events_keep_body_order_across_messages_statuses_and_errors() -> None:
    body = cloud(
        value(
            messages=[message(id="wamid.1"), message(id="wamid.2")],
            statuses=[{"id": "wamid.S", "status": "read", "timestamp": "1"}],
            errors=[{"code": 1}],
        ),
        value(messages=[message(id="wamid.3")]),
    )
    kinds = [(type(e).__name__, getattr(e, "id", None)) for e in parse(body)]
    assert kinds == [
        ("Message", "wamid.1"),
        ("Message", "wamid.2"),
        ("Status", "wamid.S"),
        ("WebhookError", None),
        ("Message", "wamid.3"),
    ]


# ---- SERPRO ------------------------------------------------------------------------------


def serpro(**arrays: Any) -> dict[str, Any]:
    body = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "556140041234", "phone_number_id": "77"},
        "contacts": [],
        "messages": [],
        "errors": [],
        "statuses": [],
        "delay": 0,
    }
    body.update(arrays)
    return body


def test_serpro_message() -> None:
    contacts = [{"profile": {"name": "Cidadão"}, "wa_id": WA_ID}]
    [event] = parse(serpro(messages=[message()], contacts=contacts))
    assert isinstance(event, Message)
    assert (event.provider, event.phone_number_id, event.contact_name) == (
        "serpro",
        "77",
        "Cidadão",
    )


def test_serpro_request_id_top_level_or_per_status_and_numeric() -> None:
    statuses = [
        {"id": "wamid.A", "status": "sent", "timestamp": "1"},
        {"id": "wamid.B", "status": "sent", "timestamp": "1", "idRequisicao": 42},
    ]
    first, second = parse(serpro(statuses=statuses, idRequisicao="req-1"))
    assert (first.request_id, second.request_id) == ("req-1", "42")


def test_serpro_body_with_nothing_gives_no_events() -> None:
    assert parse(serpro()) == []


def test_detect_provider() -> None:
    assert detect_provider(cloud(value())) == "cloud_api"
    assert detect_provider({"entry": []}) == "cloud_api"
    assert detect_provider(serpro()) == "serpro"
    assert detect_provider({"messaging_product": "whatsapp", "statuses": []}) == "serpro"
    documents: list[Any] = [{}, {"messaging_product": "whatsapp"}, {"messages": []}, [], "x", None]
    for document in documents:
        with pytest.raises(WebhookFormatError) as caught:
            detect_provider(document)
        assert caught.value.path == "$"


def test_forced_provider() -> None:
    with pytest.raises(WebhookFormatError, match=r"^object: missing"):
        parse(serpro(), "cloud_api")
    with pytest.raises(WebhookFormatError, match=r"^\$: a Cloud API envelope"):
        parse(cloud(value()), "serpro")
    with pytest.raises(ValueError, match="unknown provider"):
        parse(cloud(value()), "telegram")


# ---- the error ---------------------------------------------------------------------------


def test_error_names_the_path_as_design_shows() -> None:
    body = cloud(value(), value(messages=[message(timestamp=None) | {"timestamp": None}]))
    with pytest.raises(WebhookFormatError) as caught:
        parse(body)
    error = caught.value
    assert str(error) == (
        "entry[0].changes[1].value.messages[0].timestamp: expected a string of digits, got null"
    )
    assert error.path == "entry[0].changes[1].value.messages[0].timestamp"
    assert error.reason == "expected a string of digits, got null"
    assert isinstance(error, ValueError)


def test_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(WebhookFormatError("a.b", "why")))
    assert (error.path, error.reason, str(error)) == ("a.b", "why", "a.b: why")


def test_parse_webhook_accepts_str_and_bytes() -> None:
    body = json.dumps(cloud(value(messages=[message()])))
    assert parse_webhook(body) == parse_webhook(body.encode())
    assert parse_webhook(bytearray(body.encode()))[0].id == "wamid.ONE"  # type: ignore[arg-type,union-attr]
