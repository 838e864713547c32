"""Target "pywa": pywa's own Flask webhook (signature check, parsing, handler dispatch) with a
handler that asks the bot (Rasa's REST channel) and replies each answer with `reply_text`, as
a pywa user would write it. pywa runs the handler inside the webhook request.

Environment: BENCH_GRAPH_URL, BENCH_RASA_URL (bench/fakes.py).
"""

from __future__ import annotations

import os

import httpx
from flask import Flask
from pywa import WhatsApp, types

from bench.bodies import ACCESS_TOKEN, APP_SECRET, PHONE_NUMBER_ID, VERIFY_TOKEN, WEBHOOK_PATH

app = Flask(__name__)
rasa = httpx.Client(
    base_url=os.environ["BENCH_RASA_URL"],
    timeout=30,
    limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
)
session = httpx.Client(
    timeout=30, limits=httpx.Limits(max_connections=100, max_keepalive_connections=100)
)
wa = WhatsApp(
    phone_id=PHONE_NUMBER_ID,
    token=ACCESS_TOKEN,
    session=session,
    server=app,
    webhook_endpoint=WEBHOOK_PATH,
    verify_token=VERIFY_TOKEN,
    app_secret=APP_SECRET,
    api_version="23.0",
)
# pywa always talks to graph.facebook.com; point its session at the fake Graph.
session.base_url = f"{os.environ['BENCH_GRAPH_URL']}/v23.0"


@app.get("/healthz")
def health() -> str:
    return "ok"


@wa.on_message()
def answer(client: WhatsApp, message: types.Message) -> None:
    sender = message.from_user.wa_id or message.from_user.bsuid
    answers = rasa.post(
        "/webhooks/rest/webhook", json={"sender": f"+{sender}", "message": message.text}
    ).json()
    for item in answers:
        if "text" in item:
            message.reply_text(item["text"])
