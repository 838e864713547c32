"""Fast loopback stand-ins for Meta's Graph API and Rasa's REST channel, for the benchmark.

One asyncio process serves both (uvloop when installed), with a minimal HTTP/1.1 keep-alive
parser, so they cost far less per request than the targets they serve (`python -m bench`
measures their ceiling with the same load tool and prints it).

- Graph: `POST /{version}/{phone_number_id}/messages` answers `{"messages": [{"id": …}]}` and
  records (recipient, text) in arrival order.
- Rasa: `POST /webhooks/rest/webhook` answers `[{"text": "Você disse: <message>"}]` after
  `delay` seconds (asyncio.sleep: thousands may wait at once).
- Control: `GET /_stats` → `{"replies": n, "rasa_calls": n}`; `GET /_replies` → the recorded
  replies; `POST /_reset` with `{"rasa_delay": s}` clears them and sets the delay.

Run: `python -m bench.fakes --graph-port 18001 --rasa-port 18002 [--rasa-delay 0.5]`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
from typing import Any

State = dict[str, Any]


def new_state(rasa_delay: float) -> State:
    return {"replies": [], "rasa_calls": 0, "rasa_delay": rasa_delay, "ids": itertools.count(1)}


def _response(status: int, payload: Any) -> bytes:
    data = json.dumps(payload, ensure_ascii=False).encode()
    reason = {200: "OK", 404: "Not Found", 400: "Bad Request"}.get(status, "OK")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def _graph(state: State, method: str, path: str, body: bytes) -> tuple[int, Any]:
    if method == "POST" and path.endswith("/messages"):
        document = json.loads(body or b"{}")
        to = document.get("to") or document.get("recipient")
        text = (document.get("text") or {}).get("body")
        state["replies"].append((to, text))
        return 200, {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": f"wamid.fake.{next(state['ids'])}"}],
        }
    return _control(state, method, path, body)


async def _rasa(state: State, method: str, path: str, body: bytes) -> tuple[int, Any]:
    if method == "POST" and path == "/webhooks/rest/webhook":
        document = json.loads(body or b"{}")
        state["rasa_calls"] += 1
        if state["rasa_delay"]:
            await asyncio.sleep(state["rasa_delay"])
        return 200, [
            {"recipient_id": document.get("sender"), "text": f"Você disse: {document['message']}"}
        ]
    return _control(state, method, path, body)


def _control(state: State, method: str, path: str, body: bytes) -> tuple[int, Any]:
    if path == "/_stats":
        return 200, {"replies": len(state["replies"]), "rasa_calls": state["rasa_calls"]}
    if path == "/_replies":
        return 200, state["replies"]
    if method == "POST" and path == "/_reset":
        options = json.loads(body or b"{}")
        state["replies"] = []
        state["rasa_calls"] = 0
        state["rasa_delay"] = float(options.get("rasa_delay", state["rasa_delay"]))
        return 200, {"ok": True}
    if path in ("/", "/_ping"):
        return 200, {"ok": True}
    return 404, {"error": {"message": "unknown path", "code": 100}}


async def _serve_connection(
    handler: Any, state: State, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                if line[:15].lower() == "content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length) if length else b""
            status, payload = await handler(state, method, path.split("?", 1)[0], body)
            writer.write(_response(status, payload))
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def serve(graph_port: int, rasa_port: int, rasa_delay: float) -> None:
    state = new_state(rasa_delay)

    def factory(handler: Any) -> Any:
        async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _serve_connection(handler, state, reader, writer)

        return connection

    graph = await asyncio.start_server(factory(_graph), "127.0.0.1", graph_port, backlog=1024)
    rasa = await asyncio.start_server(factory(_rasa), "127.0.0.1", rasa_port, backlog=1024)
    print(f"fakes ready: graph :{graph_port}, rasa :{rasa_port}", flush=True)
    async with graph, rasa:
        await asyncio.gather(graph.serve_forever(), rasa.serve_forever())


def main() -> None:
    parser = argparse.ArgumentParser(description="fake Graph and fake Rasa for the benchmark")
    parser.add_argument("--graph-port", type=int, required=True)
    parser.add_argument("--rasa-port", type=int, required=True)
    parser.add_argument("--rasa-delay", type=float, default=0.0)
    args = parser.parse_args()
    coroutine = serve(args.graph_port, args.rasa_port, args.rasa_delay)
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)


if __name__ == "__main__":
    main()
