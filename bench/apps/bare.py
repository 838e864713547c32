"""Target "bare": a Flask endpoint that reads the body and answers 200 (the server's ceiling)."""

from __future__ import annotations

from flask import Flask, request

app = Flask(__name__)


@app.get("/healthz")
def health() -> str:
    return "ok"


@app.post("/webhooks/whatsapp/webhook")
def webhook() -> str:
    request.get_data()
    return "ok"
