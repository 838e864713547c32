"""A stand-in for a trained Rasa agent that plays a Rasa project's rules (tests only).

It does what `rasa.core.agent.Agent.handle_message` does for a rules-only bot, with the
project's own files: `domain.yml` (intents, responses), `data/rules.yml` (which actions follow
an intent), and its custom actions, run by rasa_sdk's real `ActionExecutor` on a real
`Tracker`. Replies go out through the message's real output channel (`send_response`), as
Rasa's `BotUttered` does. What it does not have is a trained NLU model: `/intent{json}` is
parsed as Rasa's `RegexMessageHandler` parses it (no model involved there either), `/start N`
as the example's NLU examples teach, a text equal to one of `data/nlu.yml`'s examples as that
example's intent, anything else is `nlu_fallback`. A real model is the opt-in end-to-end run
(RASA_E2E=1).
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

import rasa_sdk
import yaml
from rasa.core.channels.channel import UserMessage
from rasa_sdk.executor import ActionExecutor

_INTENT = re.compile(r"^/(?P<name>[\w-]+)(?P<entities>\{.*\})?\s*$", re.S)
_START = re.compile(r"^/start\s+(?P<id>\d+)\s*$", re.I)


class RulesAgent:
    def __init__(self, project: Path) -> None:
        self.domain: dict[str, Any] = yaml.safe_load((project / "domain.yml").read_text("utf-8"))
        rules = yaml.safe_load((project / "data" / "rules.yml").read_text("utf-8"))["rules"]
        self.intents = set(self.domain["intents"])
        nlu = yaml.safe_load((project / "data" / "nlu.yml").read_text("utf-8"))["nlu"]
        self.examples = {
            line.strip()[2:].strip().lower(): item["intent"]
            for item in nlu
            if "intent" in item
            for line in item["examples"].splitlines()
            if line.strip().startswith("- ") and "](" not in line
        }
        self.rule_actions: dict[str, list[str]] = {}
        for rule in rules:
            steps = rule["steps"]
            self.rule_actions[steps[0]["intent"]] = [step["action"] for step in steps[1:]]
        if str(project) not in sys.path:
            sys.path.insert(0, str(project))
        self.executor = ActionExecutor()
        self.executor.register_package("actions")
        self.slots: dict[str, dict[str, Any]] = {}
        self.received: list[UserMessage] = []
        self.ready = True

    def is_ready(self) -> bool:
        return self.ready

    def parse(self, text: str | None) -> tuple[str, list[dict[str, Any]]]:
        text = (text or "").strip()
        match = _INTENT.match(text)
        if match and match.group("name") in self.intents:
            entities = json.loads(match.group("entities") or "{}")
            return match.group("name"), [{"entity": k, "value": v} for k, v in entities.items()]
        start = _START.match(text)
        if start:
            return "start", [{"entity": "conversation_id", "value": start.group("id")}]
        intent = self.examples.get(text.lower())
        return (intent, []) if intent else ("nlu_fallback", [])

    async def handle_message(self, message: UserMessage) -> None:
        self.received.append(message)
        intent, entities = self.parse(message.text)
        slots = self.slots.setdefault(message.sender_id, {})
        for entity in entities:  # from_entity slot mappings
            if entity["entity"] in self.domain.get("slots", {}):
                slots[entity["entity"]] = entity["value"]
        actions = self.rule_actions.get(intent, self.rule_actions["nlu_fallback"])
        for action in actions:
            if action.startswith("utter_"):
                await self.utter(message, {"response": action})
            else:
                await self.run_action(message, action, intent, entities)

    async def utter(self, message: UserMessage, response: dict[str, Any]) -> None:
        name = response.get("response") or response.get("template")
        if name:
            response = {
                **copy.deepcopy(self.domain["responses"][name][0]),
                **{
                    key: value
                    for key, value in response.items()
                    if value and key not in ("response", "template")
                },
            }
        sent = {k: v for k, v in response.items() if v not in (None, [], {}, "")}
        await message.output_channel.send_response(message.sender_id, sent)

    async def run_action(
        self, message: UserMessage, action: str, intent: str, entities: list[dict[str, Any]]
    ) -> None:
        slots = self.slots[message.sender_id]
        tracker = {
            "sender_id": message.sender_id,
            "slots": dict(slots),
            "latest_message": {
                "text": message.text,
                "intent": {"name": intent, "confidence": 1.0},
                "entities": entities,
                "metadata": message.metadata or {},
            },
            "events": [],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": "action_listen",
        }
        result = await self.executor.run(
            {
                "next_action": action,
                "sender_id": message.sender_id,
                "tracker": tracker,
                "domain": self.domain,
                "version": rasa_sdk.__version__,
            }
        )
        assert result is not None
        for event in result["events"]:
            if event.get("event") == "slot":
                slots[event["name"]] = event["value"]
        for response in result["responses"]:
            await self.utter(message, response)
