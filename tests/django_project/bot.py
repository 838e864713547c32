"""The project's bot: any callable of the project answers (ANSWER_BACKEND)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from whatsapp_api_integration.core.contract import IncomingMessage

ANSWERED: list[IncomingMessage] = []


def answer(incoming: IncomingMessage) -> list[dict[str, Any]]:
    ANSWERED.append(incoming)
    name = incoming.metadata.get("contact_name") or "participante"
    return [
        {
            # Django's settings are there for the bot, as in any code of the project.
            "text": f"Olá, {name}! Recebido: {incoming.text} ({settings.LANGUAGE_CODE})",
            "buttons": [
                {"title": "Concordo", "payload": "1"},
                {"title": "Discordo", "payload": "0"},
            ],
        }
    ]
