"""`whatsapp-gateway lint domain.yml`: the responses of a Rasa domain that WhatsApp would
refuse or that the gateway would have to reshape, before they reach a contact.

    whatsapp-gateway lint domain.yml            # or a folder of domain files
    whatsapp-gateway lint --strict domain/      # notes fail too

Every response variation is rendered by the core (exactly what the pipeline sends) and
checked against WhatsApp's limits (DESIGN §8). One line per finding: the response name, its
variation, what is wrong, and what the contact will see instead. A *problem* (a title
shortened, options split into several lists, a text cut in parts, a body too long for its
buttons, a custom body WhatsApp refuses, a key nobody reads) makes the exit status 1; a
*note* (4 to 10 options shown as a list, buttons with no text) does not, unless `--strict`.
Exit 2: a file that cannot be read. Needs PyYAML (the `[rasa]` extra; Rasa has it).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whatsapp_api_integration.core import limits
from whatsapp_api_integration.core.events import Recipient
from whatsapp_api_integration.core.limits import fits, utf16_len
from whatsapp_api_integration.core.outbound import (
    DEFAULT_LIST_BUTTON_LABEL,
    CustomMessage,
    ListMessage,
    MediaMessage,
    OutgoingMessage,
    RenderOptions,
    ReplyButtons,
    TemplateMessage,
    TextMessage,
    check_cloud_api,
    render,
    to_cloud_api,
)

EXIT_PROBLEMS = 1
EXIT_BAD_INPUT = 2
# Keys of a Rasa response variation that choose it or describe it, never sent.
RASA_ONLY_KEYS = frozenset({"condition", "channel", "metadata", "id", "elements"})
# Variations for these channels reach WhatsApp (the channel, the gateway's REST channel).
WHATSAPP_CHANNELS = frozenset({"whatsapp", "rest"})
_PLACEHOLDER = Recipient(wa_id="0")
_SLOT = re.compile(r"\{[A-Za-z_][\w]*\}")


@dataclass(frozen=True)
class Finding:
    response: str
    variation: int
    severity: str  # "problem" | "note"
    what: str
    contact_sees: str

    def line(self) -> str:
        where = f"{self.response}[{self.variation}]"
        return f"{self.severity}: {where}: {self.what}\n    the contact sees: {self.contact_sees}"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "lint",
        help="check a Rasa domain's responses against WhatsApp's limits",
        description=(
            "Report every response of a Rasa domain that WhatsApp would refuse or that the "
            "gateway would reshape, with what the contact will see. Exit 1 on problems."
        ),
    )
    parser.add_argument("paths", nargs="+", metavar="DOMAIN", help="domain.yml or a folder")
    parser.add_argument("--strict", action="store_true", help="notes make the exit status 1")
    parser.add_argument("--list-button-label", default=DEFAULT_LIST_BUTTON_LABEL)
    parser.set_defaults(func=run)


# ---- reading --------------------------------------------------------------------------------


class DomainError(ValueError):
    pass


def domain_files(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml")))
        elif path.is_file():
            files.append(path)
        else:
            raise DomainError(f"{name}: no such file or folder")
    return files


def load_responses(path: Path) -> dict[str, Any]:
    try:
        import yaml
    except ImportError as error:  # pragma: no cover - the [rasa] extra has it
        raise DomainError(
            "reading YAML needs PyYAML: pip install 'whatsapp-api-integration[rasa]'"
        ) from error
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise DomainError(f"{path}: cannot be read: {error}") from None
    except yaml.YAMLError as error:
        raise DomainError(f"{path}: not valid YAML: {error}") from None
    if document is None:
        return {}
    if not isinstance(document, Mapping):
        raise DomainError(
            f"{path}: expected a Rasa domain (a mapping), got a {type(document).__name__}"
        )
    responses = document.get("responses") or {}
    if not isinstance(responses, Mapping):
        raise DomainError(f"{path}: `responses` must map names to lists of variations")
    return dict(responses)


# ---- checking -------------------------------------------------------------------------------


def _short(text: str, size: int = 50) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= size else one_line[: size - 1] + "…"


def describe(message: OutgoingMessage) -> str:
    """What the contact sees for one rendered message, in a few words."""
    if isinstance(message, TextMessage):
        return f'text "{_short(message.body)}" ({utf16_len(message.body)} chars)'
    if isinstance(message, ReplyButtons):
        titles = " | ".join(choice.title for choice in message.choices)
        return f'"{_short(message.body, 30)}" with buttons [{titles}]'
    if isinstance(message, ListMessage):
        rows = [row for section in message.sections for row in section.rows]
        titles = " | ".join(row.title for row in rows)
        return (
            f'"{_short(message.body, 30)}" with a list behind "{message.button_label}" '
            f"({len(rows)} rows: {titles})"
        )
    if isinstance(message, MediaMessage):
        caption = f' captioned "{_short(message.caption, 30)}"' if message.caption else ""
        return f"{message.kind} {message.link or message.media_id}{caption}"
    if isinstance(message, TemplateMessage):
        return f"template {message.name}"
    if isinstance(message, CustomMessage):
        return f"custom JSON ({message.payload.get('type') or message.payload.get('path') or '?'})"
    return "a location request"


def _options(variation: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    for key in ("buttons", "quick_replies"):
        value = variation.get(key)
        if isinstance(value, list):
            found.extend(item if isinstance(item, Mapping) else {"title": item} for item in value)
    return found


def check_variation(
    name: str, number: int, variation: Any, options: RenderOptions
) -> list[Finding]:
    findings: list[Finding] = []

    def add(severity: str, what: str, sees: str) -> None:
        findings.append(Finding(name, number, severity, what, sees))

    if not isinstance(variation, Mapping):
        add(
            "problem",
            f"expected a mapping (text, buttons, ...), got {type(variation).__name__}",
            "nothing",
        )
        return findings
    channel = variation.get("channel")
    if channel is not None and channel not in WHATSAPP_CHANNELS:
        return findings  # meant for another channel: never sent to WhatsApp
    sent = {key: value for key, value in variation.items() if key not in RASA_ONLY_KEYS}
    result = render([sent], options)
    seen = " → ".join(describe(message) for message in result.messages) or "nothing"
    for warning in result.warnings:
        add("problem", warning.removeprefix("response[0]").lstrip(".: ") or warning, seen)

    text = sent.get("text")
    text = text if isinstance(text, str) else None
    choices = _options(sent)
    titles = [
        " ".join(str(choice.get("title") or choice.get("payload") or "").split())
        for choice in choices
    ]
    if text is not None and _SLOT.search(text):
        add(
            "note",
            "the text fills in slots, so its length is known only when sent; "
            "it is checked as written",
            seen,
        )
    if choices:
        count = len(choices)
        lists = -(-count // limits.LIST_ROWS_MAX)
        as_buttons = any(isinstance(m, ReplyButtons) for m in result.messages)
        if count > limits.LIST_ROWS_MAX:
            add(
                "problem",
                f"{count} options, but a WhatsApp list holds {limits.LIST_ROWS_MAX}: "
                f"sent as {lists} lists",
                seen,
            )
        elif count > limits.REPLY_BUTTONS_MAX:
            add(
                "note",
                f"{count} options, more than {limits.REPLY_BUTTONS_MAX} reply buttons: "
                "sent as a list",
                seen,
            )
        if count <= limits.REPLY_BUTTONS_MAX and not as_buttons:
            long = [t for t in titles if not fits(t, limits.REPLY_BUTTON_TITLE_MAX)]
            if long:
                add(
                    "problem",
                    f"button title {long[0]!r} is {utf16_len(long[0])} characters, "
                    f"over {limits.REPLY_BUTTON_TITLE_MAX} for a reply button: sent as a list",
                    seen,
                )
        if not as_buttons:
            for title in titles:
                if not fits(title, limits.LIST_ROW_TITLE_MAX):
                    add(
                        "problem",
                        f"option title {title!r} is {utf16_len(title)} characters, "
                        f"over {limits.LIST_ROW_TITLE_MAX} for a list row: shortened, the full "
                        "title goes in the description",
                        seen,
                    )
        lowered = [t.casefold() for t in titles]
        repeated = sorted(
            {t for t, low in zip(titles, lowered, strict=True) if lowered.count(low) > 1}
        )
        if repeated:
            add(
                "problem",
                f"option titles repeat ({', '.join(repeated)}): a suffix tells them apart",
                seen,
            )
        if text is None or not text.strip():
            add(
                "note",
                f"options with no text: the body is {options.interactive_fallback_body!r}",
                seen,
            )
        elif not fits(text, limits.INTERACTIVE_BODY_MAX):
            add(
                "problem",
                f"text of {utf16_len(text)} characters, over "
                f"{limits.INTERACTIVE_BODY_MAX} for a message with options: the text goes "
                "first on its own, the options follow",
                seen,
            )
    elif text is not None and not fits(text, limits.TEXT_BODY_MAX):
        parts = sum(isinstance(m, TextMessage) for m in result.messages)
        add(
            "problem",
            f"text of {utf16_len(text)} characters, over {limits.TEXT_BODY_MAX}: "
            f"sent in {parts} parts",
            seen,
        )
    image = sent.get("image")
    if image and text and not choices and not fits(text, limits.MEDIA_CAPTION_MAX):
        add(
            "problem",
            f"text of {utf16_len(text)} characters cannot be the image's caption "
            f"(max {limits.MEDIA_CAPTION_MAX}): sent first, as text",
            seen,
        )
    for message in result.messages:
        if isinstance(message, CustomMessage) and "path" in message.payload:
            continue  # a SERPRO request, written for SERPRO: no Graph limits to check
        for problem in check_cloud_api(to_cloud_api(message, _PLACEHOLDER)):
            add(
                "problem",
                f"WhatsApp would refuse it: {problem}",
                f"nothing for this message, WhatsApp refuses it ({describe(message)})",
            )
    return findings


def lint(responses: Mapping[str, Any], options: RenderOptions) -> list[Finding]:
    findings: list[Finding] = []
    for name, variations in responses.items():
        if not isinstance(variations, list):
            findings.append(
                Finding(str(name), 0, "problem", "expected a list of variations", "nothing")
            )
            continue
        for number, variation in enumerate(variations):
            findings.extend(check_variation(str(name), number, variation, options))
    return findings


def run(args: argparse.Namespace) -> int:
    options = RenderOptions(list_button_label=args.list_button_label)
    try:
        files = domain_files(args.paths)
        responses: dict[str, Any] = {}
        for path in files:
            responses.update(load_responses(path))
    except DomainError as error:
        print(f"whatsapp-gateway lint: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    findings = lint(responses, options)
    for finding in findings:
        print(finding.line())
    problems = sum(f.severity == "problem" for f in findings)
    notes = len(findings) - problems
    print(
        f"{len(responses)} response(s) in {len(files)} file(s): "
        f"{problems} problem(s), {notes} note(s)"
    )
    failing = problems + (notes if args.strict else 0)
    return EXIT_PROBLEMS if failing else 0
