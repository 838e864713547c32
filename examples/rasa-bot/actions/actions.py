"""Custom actions of the example participation bot (run them with `rasa run actions`).

The conversations are demo data; a real bot would read them from its platform's API (the
original read EJ's `/api/v1/conversations/{id}/`)."""

from __future__ import annotations

import logging
import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from whatsapp_api_integration.integrations.rasa_actions import (
    contact_name,
    utter_template,
    whatsapp_metadata,
)

logger = logging.getLogger(__name__)

CONVERSATIONS: dict[str, dict[str, Any]] = {
    "1": {
        "title": "Mobilidade no bairro",
        "comments": [
            "A prefeitura deveria criar mais ciclovias.",
            "O ônibus deveria passar a cada 10 minutos no horário de pico.",
            "As calçadas precisam de rampas de acessibilidade.",
        ],
    },
    "2": {
        "title": "Cultura na praça",
        "comments": ["A praça deveria ter shows gratuitos aos domingos."],
    },
}

VOTE_BUTTONS = [
    {"title": "Concordar", "payload": '/vote{"choice": "1"}'},
    {"title": "Discordar", "payload": '/vote{"choice": "-1"}'},
    {"title": "Pular", "payload": '/vote{"choice": "0"}'},
]
# Six answers: more than three reply buttons hold, so WhatsApp shows them as a list. Built
# here, not in domain.yml: Rasa fills `{...}` in a domain response's payloads with slots and
# logs an error for each `/intent{"entity": ...}` payload it cannot fill.
AGE_BUTTONS = [
    {"title": title, "payload": f'/inform_age{{"age_group": "{value}"}}'}
    for title, value in (
        ("Até 17 anos", "0-17"),
        ("18 a 29 anos", "18-29"),
        ("30 a 44 anos", "30-44"),
        ("45 a 59 anos", "45-59"),
        ("60 anos ou mais", "60+"),
        ("Prefiro não dizer", "0"),
    )
]
_START = re.compile(r"^\s*/start\s+(\S+)", re.IGNORECASE)


def utter_comment(
    dispatcher: CollectingDispatcher, conversation: dict[str, Any], index: int
) -> None:
    comments = conversation["comments"]
    progress = f"{index + 1} de {len(comments)} comentários."
    dispatcher.utter_message(
        text=f"*{comments[index]}*\n\nO que você acha disso?\n\n{progress}",
        buttons=VOTE_BUTTONS,
    )


def ask_age_group(dispatcher: CollectingDispatcher) -> None:
    dispatcher.utter_message(
        text="Obrigado pelos seus votos! Para terminar, qual a sua faixa etária?",
        buttons=AGE_BUTTONS,
    )


class ActionStartParticipation(Action):
    def name(self) -> str:
        return "action_start_participation"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        text = (tracker.latest_message or {}).get("text") or ""
        match = _START.match(text)
        conversation_id = next(tracker.get_latest_entity_values("conversation_id"), None) or (
            match.group(1) if match else None
        )
        conversation = CONVERSATIONS.get(str(conversation_id))
        if conversation is None:
            dispatcher.utter_message(response="utter_unknown_conversation")
            return []
        name = contact_name(tracker, "Participante")
        dispatcher.utter_message(
            text=f"Olá, {name}! Vamos participar da conversa *{conversation['title']}*."
        )
        utter_comment(dispatcher, conversation, 0)
        return [SlotSet("conversation_id", str(conversation_id)), SlotSet("comment_index", 0)]


class ActionRegisterVote(Action):
    def name(self) -> str:
        return "action_register_vote"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        conversation = CONVERSATIONS.get(str(tracker.get_slot("conversation_id")))
        if conversation is None:
            dispatcher.utter_message(response="utter_greet")
            return []
        index = int(tracker.get_slot("comment_index") or 0)
        choice = next(tracker.get_latest_entity_values("choice"), None)
        logger.info(
            "vote %s on comment %d of conversation %s by %s (message %s)",
            choice,
            index,
            tracker.get_slot("conversation_id"),
            tracker.sender_id,
            whatsapp_metadata(tracker).get("message_id"),
        )
        index += 1
        if index < len(conversation["comments"]):
            utter_comment(dispatcher, conversation, index)
        else:
            ask_age_group(dispatcher)
        return [SlotSet("comment_index", index)]


class ActionDeliveryFailed(Action):
    """WhatsApp could not deliver a reply (RASA_FAILED_DELIVERY_INTENT=whatsapp_delivery_failed).

    131047: more than 24 hours since the contact last wrote; only a template gets through.
    The template must exist and be approved in your WhatsApp Business Account."""

    def name(self) -> str:
        return "action_delivery_failed"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        code = next(tracker.get_latest_entity_values("whatsapp_error_code"), None)
        logger.warning("a reply to %s was not delivered (code %s)", tracker.sender_id, code)
        if str(code) == "131047":
            utter_template(dispatcher, tracker, "retomar_participacao", "pt_BR")
        return []
