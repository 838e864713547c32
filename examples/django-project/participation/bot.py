"""The participation flow of the original project, as a Django callable.

`/start <conversation id>` opens a conversation; each comment comes with three reply buttons
(Concordo, Discordo, Pular) whose payloads are the vote (1, -1 and 0: a 0 payload reaches
the bot, unlike in the original); after the last comment, a question with five choices,
which WhatsApp shows as a list. Votes are Django models, written with the ORM from the
worker, like any code of the project.
"""

from __future__ import annotations

from typing import Any

from participation.models import Participant, Vote
from whatsapp_api_integration.core.contract import IncomingMessage

COMMENTS = (
    "A prefeitura deve ampliar as ciclovias do centro.",
    "O transporte público deve ser gratuito aos domingos.",
)
VOTES = (
    {"title": "Concordo", "payload": "1"},
    {"title": "Discordo", "payload": "-1"},
    {"title": "Pular", "payload": "0"},
)
SOURCES = ("Rádio", "Televisão", "Redes sociais", "Amigos ou família", "Site da prefeitura")


def answer(incoming: IncomingMessage) -> list[dict[str, Any]]:
    text = incoming.text.strip()
    name = incoming.metadata.get("contact_name") or ""
    if text.startswith("/start"):
        conversation = text.removeprefix("/start").strip() or "1"
        participant, _ = Participant.objects.update_or_create(
            contact=incoming.sender,
            defaults={"name": name, "conversation": conversation, "position": 0},
        )
        greeting = f"Olá, {name}!" if name else "Olá!"
        return [
            {"text": f"{greeting} Bem-vindo(a) à conversa {conversation}."},
            _comment(participant.position),
        ]
    participant = Participant.objects.filter(contact=incoming.sender).first()
    if participant is None:
        return [{"text": "Para participar, envie /start e o número da conversa. Ex.: /start 42"}]
    if participant.position < len(COMMENTS):
        choice = {vote["payload"]: int(vote["payload"]) for vote in VOTES}.get(text)
        if choice is None:
            return [
                {"text": "Use os botões para votar, por favor."},
                _comment(participant.position),
            ]
        Vote.objects.create(
            participant=participant,
            conversation=participant.conversation,
            comment=participant.position,
            choice=choice,
        )
        participant.position += 1
        participant.save(update_fields=["position"])
        if participant.position < len(COMMENTS):
            return [{"text": "Voto registrado."}, _comment(participant.position)]
        return [
            {
                "text": "Obrigado por votar! Como você soube desta consulta?",
                "buttons": [{"title": title, "payload": title} for title in SOURCES],
            }
        ]
    return [{"text": f"Anotado: {text}. Até a próxima conversa!"}]


def _comment(position: int) -> dict[str, Any]:
    return {
        "text": f"Comentário {position + 1} de {len(COMMENTS)}: {COMMENTS[position]}",
        "buttons": list(VOTES),
    }
