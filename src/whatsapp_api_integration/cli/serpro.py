"""`whatsapp-gateway serpro ...`: SERPRO's webhook registration, request status, credentials.

    whatsapp-gateway serpro webhook register [URL] [--form json|text] [--no-token]
    whatsapp-gateway serpro webhook list
    whatsapp-gateway serpro webhook update ID [URL] [--no-token]
    whatsapp-gateway serpro webhook delete [ID]
    whatsapp-gateway serpro template NAME RECIPIENT... [--param VALUE]...
    whatsapp-gateway serpro status REQUEST_ID
    whatsapp-gateway serpro token

URL defaults to RASA_WEBHOOK_URL. Tokens and secrets are never printed: a registered webhook's
jwtToken shows as "set" or "unset". Exit codes: 0 done, 1 SERPRO refused or failed, 2 settings.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from whatsapp_api_integration.providers import SendError
from whatsapp_api_integration.settings import Settings, SettingsError, load_settings


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "serpro", help="SERPRO: register the webhook, check a request, check the credentials"
    )
    groups = parser.add_subparsers(dest="serpro_command", metavar="COMMAND", required=True)

    webhook = groups.add_parser("webhook", help="register, list, update or delete the webhook")
    actions = webhook.add_subparsers(dest="webhook_command", metavar="ACTION", required=True)
    add = actions.add_parser("register", help="register URL (default RASA_WEBHOOK_URL)")
    add.add_argument("url", nargs="?", help="public URL ending in /webhooks/whatsapp/webhook")
    add.add_argument(
        "--form",
        choices=("json", "text"),
        help='json: {"uri", "jwtToken"}; text: the bare URL (the original). '
        "Default SERPRO_WEBHOOK_FORM",
    )
    add.add_argument(
        "--no-token", action="store_true", help="do not register SERPRO_WEBHOOK_TOKEN as jwtToken"
    )
    add.set_defaults(func=webhook_register)
    actions.add_parser("list", help="list the registered webhooks").set_defaults(func=webhook_list)
    change = actions.add_parser("update", help="point webhook ID at URL")
    change.add_argument("id")
    change.add_argument("url", nargs="?")
    change.add_argument("--no-token", action="store_true")
    change.set_defaults(func=webhook_update)
    remove = actions.add_parser("delete", help="delete webhook ID (no ID: the number's webhook)")
    remove.add_argument("id", nargs="?")
    remove.set_defaults(func=webhook_delete)

    template = groups.add_parser(
        "template", help="send an approved template to one or more numbers (a notification)"
    )
    template.add_argument("name", help="the template's name, as approved by Meta")
    template.add_argument("recipients", nargs="+", help="numbers with country code, 55...")
    template.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="VALUE",
        help="a body parameter ({{1}}, {{2}}, ... in order); the same for every recipient",
    )
    template.set_defaults(func=send_template)

    status = groups.add_parser("status", help="show what SERPRO knows of a request id")
    status.add_argument("request_id")
    status.set_defaults(func=request_status)

    token = groups.add_parser("token", help="check the credentials by getting an access token")
    token.set_defaults(func=check_token)


def _settings() -> Settings:
    settings = load_settings()
    if not settings.serpro_configured:
        raise SettingsError(["SERPRO_CLIENT_ID and SERPRO_CLIENT_SECRET: set both first"])
    return settings


def _run(action: Any) -> int:
    """Run `action(settings)`; turn settings and SERPRO errors into a line and an exit code."""
    try:
        return int(action(_settings()))
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    except SendError as error:
        hint = " (try again later)" if error.retryable else ""
        print(f"error: {error}{hint}", file=sys.stderr)
        return 1


def _show(answer: Any) -> None:
    if answer is None or answer == "":
        return
    if isinstance(answer, (dict, list)):
        print(json.dumps(_without_tokens(answer), ensure_ascii=False, indent=2))
    else:
        print(answer)


def _without_tokens(value: Any) -> Any:
    if isinstance(value, list):
        return [_without_tokens(item) for item in value]
    if isinstance(value, dict):
        return {
            key: ("set" if item else "unset")
            if key.lower() in ("jwttoken", "token", "access_token")
            else _without_tokens(item)
            for key, item in value.items()
        }
    return value


def webhook_register(args: argparse.Namespace) -> int:
    from whatsapp_api_integration.serpro_api_client import (
        _webhook_url,
        open_client,
        webhook_warnings,
    )

    def action(settings: Settings) -> int:
        url = _webhook_url(args.url, settings)
        form = args.form or settings.serpro_webhook_form
        token = None if args.no_token else settings.serpro_webhook_token
        for warning in webhook_warnings(url, form, settings):
            print(f"warning: {warning}", file=sys.stderr)
        with open_client(settings) as client:
            answer = client.register_webhook(url, jwt_token=token, form=form)
        with_token = " with SERPRO_WEBHOOK_TOKEN as jwtToken" if token and form == "json" else ""
        print(f"registered {url} at SERPRO ({form} form{with_token})")
        _show(answer)
        return 0

    return _run(action)


def webhook_list(args: argparse.Namespace) -> int:
    from whatsapp_api_integration.serpro_api_client import open_client

    def action(settings: Settings) -> int:
        with open_client(settings) as client:
            hooks = client.list_webhooks()
        if not hooks:
            print("No webhook registered at SERPRO for this number.")
        for hook in hooks:
            token = "set" if hook.get("jwtToken") else "unset"
            extra = {k: v for k, v in hook.items() if k not in ("id", "uri", "jwtToken")}
            shown = f"  {json.dumps(_without_tokens(extra), ensure_ascii=False)}" if extra else ""
            print(f"{hook.get('id')}  {hook.get('uri')}  jwtToken {token}{shown}")
        return 0

    return _run(action)


def webhook_update(args: argparse.Namespace) -> int:
    from whatsapp_api_integration.serpro_api_client import _webhook_url, open_client

    def action(settings: Settings) -> int:
        url = _webhook_url(args.url, settings)
        token = None if args.no_token else settings.serpro_webhook_token
        with open_client(settings) as client:
            answer = client.update_webhook(args.id, url, jwt_token=token)
        print(f"webhook {args.id} now points at {url}")
        _show(answer)
        return 0

    return _run(action)


def webhook_delete(args: argparse.Namespace) -> int:
    from whatsapp_api_integration.serpro_api_client import open_client

    def action(settings: Settings) -> int:
        with open_client(settings) as client:
            client.delete_webhook(args.id)
        print(f"deleted webhook {args.id}" if args.id else "deleted this number's webhook")
        return 0

    return _run(action)


def send_template(args: argparse.Namespace) -> int:
    from whatsapp_api_integration.serpro_api_client import open_client

    def action(settings: Settings) -> int:
        with open_client(settings) as client:
            result = client.send_template(args.name, args.recipients, body_parameters=args.param)
        print(
            f"SERPRO took template {args.name!r} for {len(args.recipients)} recipient(s); "
            f"request id {result.request_id} "
            f"(whatsapp-gateway serpro status {result.request_id})"
        )
        return 0

    return _run(action)


def request_status(args: argparse.Namespace) -> int:
    from whatsapp_api_integration.serpro_api_client import open_client

    def action(settings: Settings) -> int:
        with open_client(settings) as client:
            _show(client.request_status(args.request_id))
        return 0

    return _run(action)


def check_token(args: argparse.Namespace) -> int:
    from whatsapp_api_integration.serpro_api_client import open_client

    def action(settings: Settings) -> int:
        with open_client(settings) as client:
            token = client.renew_token()
            when = (
                f"renewed after {token.renew_at - client.clock():.0f}s"
                if token.renew_at is not None
                else "no lifetime given: used until SERPRO answers 401"
            )
        print(f"SERPRO accepted the credentials of client {settings.serpro_client_id}; {when}")
        return 0

    return _run(action)
