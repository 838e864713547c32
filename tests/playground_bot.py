"""The bot the playground's tests talk to (ANSWER_BACKEND=playground_bot:answer).

It records what it was sent, and answers some words with the shapes the tests need:
`botões` → 3 reply buttons; `lista` → 7 options (a list); `seções` → a list of 2 sections;
`imagem` → an image whose link is IMAGE_URL; `documento` → a document beside it;
`quebrada` → a `custom` reply WhatsApp would reject (4 reply buttons); `falha` → fails for
good the first time (a dead letter), answers once replayed; anything else → echo.
"""

from __future__ import annotations

import threading
from typing import Any

from whatsapp_api_integration.backends import BackendError
from whatsapp_api_integration.core.contract import IncomingMessage

IMAGE_URL = "http://127.0.0.1:9/missing.png"  # the tests set the real one
received: list[str] = []
_failed_once: set[str] = set()
_lock = threading.Lock()

SEVEN = [
    "Saúde",
    "Educação",
    "Transporte",
    "Segurança",
    "Cultura",
    "Meio ambiente",
    "Prefiro não dizer",
]


def answer(incoming: IncomingMessage) -> list[dict[str, Any]]:
    text = incoming.text or ""
    with _lock:
        received.append(text)
    word = text.strip().lower()
    if word == "botões":
        return [
            {
                "text": "Você concorda? *Responda* com um toque.",
                "buttons": [
                    {"title": "Concordo", "payload": '/votar{"voto": "sim"}'},
                    {"title": "Discordo", "payload": '/votar{"voto": "nao"}'},
                    {"title": "Pular", "payload": "0"},
                ],
            }
        ]
    if word == "lista":
        return [
            {
                "text": "Qual tema é o mais importante?",
                "buttons": [
                    {"title": title, "payload": f"tema_{number}"}
                    for number, title in enumerate(SEVEN, start=1)
                ],
            }
        ]
    if word == "imagem":
        return [{"text": "Veja o _mapa_:", "image": IMAGE_URL}]
    if word == "documento":
        return [{"text": "O edital:", "attachment": IMAGE_URL.rsplit("/", 1)[0] + "/edital.pdf"}]
    if word == "seções":
        sections = [
            {"title": "Saúde", "rows": [{"id": "posto", "title": "Posto de saúde"}]},
            {
                "title": "Educação",
                "rows": [
                    {"id": "creche", "title": "Creche", "description": "Vagas em creches"},
                    {"id": "escola", "title": "Escola"},
                ],
            },
        ]
        interactive = {
            "type": "list",
            "body": {"text": "Escolha um serviço"},
            "action": {"button": "Serviços", "sections": sections},
        }
        return [{"custom": {"type": "interactive", "interactive": interactive}}]
    if word == "quebrada":
        return [
            {
                "custom": {
                    "type": "interactive",
                    "interactive": {
                        "type": "button",
                        "body": {"text": "Quatro botões"},
                        "action": {
                            "buttons": [
                                {"type": "reply", "reply": {"id": str(n), "title": f"B{n}"}}
                                for n in range(4)
                            ]
                        },
                    },
                }
            }
        ]
    if word == "falha":
        with _lock:
            first = text not in _failed_once
            _failed_once.add(text)
        if first:
            raise BackendError("the test bot refuses 'falha' once", retryable=False)
        return [{"text": "Agora deu certo."}]
    return [{"text": f"Você disse: {text}"}]
