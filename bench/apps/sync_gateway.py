"""Target "sync": the original project's design. Inside the webhook request it checks the
signature, parses the body, asks the bot (Rasa's REST channel) and sends each answer to Graph,
and only then answers 200. Nothing is stored. Pooled httpx clients (the original used
`requests`, which costs more per call), so this is the design at its best.

Environment: BENCH_GRAPH_URL, BENCH_RASA_URL (bench/fakes.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any

import httpx
from flask import Flask, request

from bench.bodies import ACCESS_TOKEN, APP_SECRET

app = Flask(__name__)
rasa = httpx.Client(
    base_url=os.environ["BENCH_RASA_URL"],
    timeout=30,
    limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
)
graph = httpx.Client(
    base_url=os.environ["BENCH_GRAPH_URL"],
    headers={"Authorization": f"Bearer {ACCESS_TOKEN}"},
    timeout=30,
    limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
)


@app.get("/healthz")
def health() -> str:
    return "ok"


@app.post("/webhooks/whatsapp/webhook")
def webhook() -> tuple[str, int]:
    data = request.get_data()
    expected = "sha256=" + hmac.new(APP_SECRET.encode(), data, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get("X-Hub-Signature-256", "")):
        return "forbidden", 401
    document: Any = json.loads(data)
    for entry in document.get("entry", []):
        for change in entry.get("changes", []):
            value = change.get("value", {})
            phone_number_id = value.get("metadata", {}).get("phone_number_id")
            for message in value.get("messages", []):
                if message.get("type") != "text":
                    continue
                sender = message["from"]
                answers = rasa.post(
                    "/webhooks/rest/webhook",
                    json={"sender": f"+{sender}", "message": message["text"]["body"]},
                ).json()
                for answer in answers:
                    if "text" in answer:
                        graph.post(
                            f"/v23.0/{phone_number_id}/messages",
                            json={
                                "messaging_product": "whatsapp",
                                "to": sender,
                                "type": "text",
                                "text": {"body": answer["text"]},
                            },
                        ).raise_for_status()
    return "ok", 200
