"""Commands that run or inspect the gateway: serve, worker, check-config, dead-letters, simulate.

`serve` runs the production server, granian (WSGI), chosen for speed: DESIGN §14 measured
12.8 k requests/s acknowledged against 4.1 k for gunicorn (gthread) on one core. The app is
built inside granian's worker process, after its fork. Jobs are worked by a separate worker
process at a lower CPU priority (cli/worker_process.py says why), or, with
`--workers-per-process N`, by threads inside each server process.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

from whatsapp_api_integration.settings import (
    Settings,
    SettingsError,
    build_gateway,
    describe,
    load_settings,
)

if TYPE_CHECKING:
    from flask import Flask

SANDBOX_PHONE_NUMBER_ID = "100000000000000"  # the number a sandbox simulates when none is set


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    _register_serve(subparsers)
    _register_worker(subparsers)
    _register_check_config(subparsers)
    _register_dead_letters(subparsers)
    _register_simulate(subparsers)


def _settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        print(error, file=sys.stderr)
        raise SystemExit(1) from None


# ---- serve -----------------------------------------------------------------------------


def _register_serve(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "serve", help="run the gateway's web server (granian) and its worker threads"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5006, help="port (default 5006)")
    parser.add_argument(
        "--threads", type=int, default=8, help="threads answering HTTP requests (default 8)"
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="server processes, each with its threads (default 1)",
    )
    workers = parser.add_mutually_exclusive_group()
    workers.add_argument(
        "--workers-per-process",
        type=int,
        metavar="N",
        help="work jobs with N threads inside each server process instead of a separate "
        "worker process (slower webhooks under load: docs/performance.md)",
    )
    workers.add_argument(
        "--no-worker",
        action="store_true",
        help="work no jobs here (run `whatsapp-gateway worker` separately)",
    )
    parser.add_argument(
        "--worker-nice",
        type=_niceness,
        default=10,
        metavar="N|idle",
        help="CPU niceness of the worker process (default 10: webhooks first; 0: same "
        "priority, better end-to-end throughput on a crowded machine; idle: Linux SCHED_IDLE, "
        "the worker only gets CPU the web process leaves, replies wait while webhooks flood)",
    )
    parser.set_defaults(func=serve)


def _niceness(value: str) -> int | str:
    if value == "idle":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a niceness (0-19) or 'idle', got {value!r}"
        ) from None


def load_app_for_server(worker_threads: int | None, http_threads: int = 8) -> Flask:
    """Called by granian inside each of its worker processes: the app and its threads are
    created after the fork, in the process that serves. Its database pool holds a connection
    for each HTTP thread and each worker thread (unless DATABASE_POOL_SIZE says otherwise)."""
    import dataclasses

    from whatsapp_api_integration.store.engine import pool_size_for
    from whatsapp_api_integration.web.app import create_app

    settings = load_settings()
    if worker_threads is not None:
        settings = dataclasses.replace(settings, workers=worker_threads)
    if settings.database_pool_size is None:
        pool_size = pool_size_for(http_threads, settings.workers)
        settings = dataclasses.replace(settings, database_pool_size=pool_size)
    return create_app(settings)


def serve(args: argparse.Namespace) -> int:
    from whatsapp_api_integration import logging_setup

    settings = _settings_or_exit()  # fail here, before any process starts, on bad settings
    # By default a worker process (WORKERS threads) works the jobs, not the server's processes.
    worker_process = not args.no_worker and args.workers_per_process is None and settings.workers
    worker_threads = 0 if args.no_worker or worker_process else args.workers_per_process
    try:
        from granian.constants import Interfaces
        from granian.log import LogLevels
        from granian.server import Server
    except ImportError:
        print(
            "granian is not installed; install the server extra: "
            "pip install 'whatsapp-api-integration[server]'",
            file=sys.stderr,
        )
        return 1
    _configure_logging(settings)
    if not _migrate_once(settings):
        return 1
    server = Server(
        "whatsapp_api_integration.web.app:create_app",
        address=args.host,
        port=args.port,
        interface=Interfaces.WSGI,
        workers=max(1, args.processes),
        blocking_threads=max(1, args.threads),
        log_level=LogLevels(settings.log_level.lower()),
        log_dictconfig=logging_setup.server_log_config(),
        # Our own access log (web/ops.py) never prints query strings; granian's would print
        # the handshake's hub.verify_token.
        log_access=False,
    )
    logging.getLogger(__name__).info(
        "serving on http://%s:%d (mode %s, backend %s, %d process(es) x %d thread(s))",
        args.host,
        args.port,
        settings.mode,
        settings.answer_backend,
        max(1, args.processes),
        max(1, args.threads),
    )
    if settings.playground:
        from whatsapp_api_integration.web.playground import startup_banner

        print(startup_banner(args.host, args.port, settings), flush=True)
    from whatsapp_api_integration.cli.worker_process import WorkerProcess

    niceness = args.worker_nice if args.worker_nice == "idle" else max(0, args.worker_nice)
    worker = WorkerProcess(niceness=niceness) if worker_process else None
    if worker is not None:
        worker.start()
    try:
        server.serve(
            target_loader=functools.partial(
                load_app_for_server, worker_threads, max(1, args.threads)
            ),
            wrap_loader=False,
        )
    finally:
        if worker is not None:
            worker.stop(timeout=settings.shutdown_grace_seconds + 10)
    return 0


def _migrate_once(settings: Settings) -> bool:
    """Bring the store's schema up to date here, before the server forks, so its processes
    do not race to migrate, and a store that cannot be opened stops us with a clear message."""
    from whatsapp_api_integration.store import Store

    try:
        store = Store(settings.database_url)
        try:
            store.migrate()
        finally:
            store.close()
    except Exception as error:
        logging.getLogger(__name__).error(
            "DATABASE_URL: cannot open or migrate the store: %s", error
        )
        return False
    return True


def _configure_logging(settings: Settings) -> None:
    from whatsapp_api_integration import logging_setup

    logging_setup.configure(
        settings.log_level, settings.log_format, settings.mask_contacts, secrets=settings.secrets()
    )


# ---- worker ----------------------------------------------------------------------------


def _register_worker(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "worker", help="work jobs (call the bot, send replies) in a separate process"
    )
    parser.set_defaults(func=worker)


def worker(args: argparse.Namespace) -> int:
    """Work up to WORKERS jobs at once (at least one) on an event loop until SIGTERM or
    SIGINT, then let the jobs in hand finish for up to SHUTDOWN_GRACE_SECONDS; jobs still
    running then are given back to the queue, for another worker to take at once. A second
    signal gives them back at once."""
    from whatsapp_api_integration.pipeline.process import (
        stop_on_signals,
        worker_process_settings,
    )

    settings = worker_process_settings(_settings_or_exit())
    _configure_logging(settings)
    in_flight = settings.workers
    gateway = build_gateway(settings)
    stop = stop_on_signals(gateway)
    log = logging.getLogger(__name__)
    pacing = (
        f"{settings.send_rate:g}/s burst {settings.send_burst}" if settings.send_rate else "off"
    )
    log.info(
        "worker: mode %s, backend %s, up to %d job(s) at once, lease %gs, grace %gs, pacing %s",
        settings.mode,
        settings.answer_backend,
        in_flight,
        settings.job_lease_seconds,
        settings.shutdown_grace_seconds,
        pacing,
    )
    gateway.start(event_loop=True)
    while not stop.wait(1.0):
        if not gateway.working():  # its traceback is logged; exit, to be restarted
            log.error("worker: the event loop stopped; exiting")
            gateway.close()
            return 1
    log.info(
        "worker: stopping; finishing the jobs in hand for up to %gs",
        settings.shutdown_grace_seconds,
    )
    gateway.close()
    log.info("worker: stopped")
    return 0


# ---- check-config ----------------------------------------------------------------------


def _register_check_config(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "check-config", help="show every setting, where it came from, and what is missing"
    )
    parser.set_defaults(func=check_config)


def check_config(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
    except SettingsError as error:
        print("Invalid settings:", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    mode_notes = {
        "sandbox": "replies are recorded, not sent",
        "Cloud API": "replies go through Meta's Cloud API",
        "SERPRO": "replies go through SERPRO",
        "Cloud API + SERPRO": "each reply goes through the provider its message came from",
    }
    print(f"Mode: {settings.mode} ({mode_notes[settings.mode]})")
    print()
    rows = describe(settings)
    width = max(len(name) for name, _ in rows)
    value_width = min(48, max(len(value) for _, value in rows))
    print(f"{'SETTING':<{width}}  {'VALUE':<{value_width}}  SOURCE")
    for name, value in rows:
        source = settings.sources.get(name, "default")
        print(f"{name:<{width}}  {value or '-':<{value_width}}  {source}")
    missing = settings.missing_for_production()
    print()
    if missing:
        print("Missing for production:")
        for line in missing:
            print(f"  - {line}")
    else:
        print("Nothing missing for production.")
    if settings.warnings:
        print()
        print("Warnings:")
        for line in settings.warnings:
            print(f"  - {line}")
    return 0


# ---- dead-letters ----------------------------------------------------------------------


def _register_dead_letters(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("dead-letters", help="list, show or replay dead letters")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="list dead letters").set_defaults(func=dead_letters_list)
    show = actions.add_parser("show", help="show one dead letter")
    show.add_argument("id")
    show.set_defaults(func=dead_letters_show)
    replay = actions.add_parser("replay", help="queue a dead letter's message again")
    replay.add_argument("id")
    replay.set_defaults(func=dead_letters_replay)


def _offline_gateway() -> Any:
    import dataclasses

    settings = _settings_or_exit()
    _configure_logging(dataclasses.replace(settings, log_level="WARNING"))
    return build_gateway(dataclasses.replace(settings, workers=0))


def _as_dict(item: Any) -> dict[str, Any]:
    import dataclasses

    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return dataclasses.asdict(item)
    if isinstance(item, dict):
        return item
    return dict(vars(item))


def _dead_letter_id(raw: str) -> int | str:
    return int(raw) if raw.isdigit() else raw


def dead_letters_list(args: argparse.Namespace) -> int:
    letters = _offline_gateway().dead_letters()
    if not letters:
        print("No dead letters.")
        return 0
    for letter in letters:
        entry = _as_dict(letter)
        summary = {
            k: entry[k] for k in ("id", "created_at", "contact", "reason", "error") if k in entry
        }
        print(json.dumps(summary, ensure_ascii=False, default=str))
    return 0


def dead_letters_show(args: argparse.Namespace) -> int:
    letter = _offline_gateway().dead_letter(_dead_letter_id(args.id))
    if letter is None:
        print(f"no dead letter with id {args.id}", file=sys.stderr)
        return 1
    print(json.dumps(_as_dict(letter), ensure_ascii=False, indent=2, default=str))
    return 0


def dead_letters_replay(args: argparse.Namespace) -> int:
    if not _offline_gateway().replay(_dead_letter_id(args.id)):
        print(f"no dead letter with id {args.id} to replay", file=sys.stderr)
        return 1
    print(f"dead letter {args.id} queued again; a running worker will pick it up")
    return 0


# ---- simulate --------------------------------------------------------------------------


def _register_simulate(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="post a WhatsApp text message to a running gateway and print its answers",
    )
    parser.add_argument("text", nargs="?", default="", help="what the contact writes")
    parser.add_argument(
        "--from",
        dest="sender",
        default="5561987654321",
        help="the contact's wa_id (default 5561987654321)",
    )
    parser.add_argument("--name", default="Maria", help="the contact's profile name")
    parser.add_argument(
        "--button-reply",
        metavar="ID",
        help="tap a reply button with this id instead of writing text",
    )
    parser.add_argument("--url", default="http://127.0.0.1:5006", help="the gateway's base URL")
    parser.add_argument("--wait", type=float, default=10.0, help="seconds to wait for answers")
    parser.set_defaults(func=simulate)


def simulated_body(
    text: str, *, sender: str, name: str, phone_number_id: str, button_reply: str | None = None
) -> dict[str, Any]:
    """A Cloud API webhook body carrying one message, as Meta would post it."""
    message: dict[str, Any] = {
        "from": sender,
        "id": f"wamid.simulated.{uuid.uuid4().hex}",
        "timestamp": str(int(time.time())),
    }
    if button_reply is not None:
        message["type"] = "interactive"
        message["interactive"] = {
            "type": "button_reply",
            "button_reply": {"id": button_reply, "title": text or button_reply},
        }
    else:
        message["type"] = "text"
        message["text"] = {"body": text}
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": name}, "wa_id": sender}],
        "messages": [message],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "0", "changes": [{"field": "messages", "value": value}]}],
    }


def simulate(args: argparse.Namespace) -> int:
    import httpx

    from whatsapp_api_integration.core.signature import sign

    settings = _settings_or_exit()
    if not args.text and args.button_reply is None:
        print("nothing to send: give a text or --button-reply ID", file=sys.stderr)
        return 2
    phone_number_id = settings.wpp_phone_number_identifier or SANDBOX_PHONE_NUMBER_ID
    document = simulated_body(
        args.text,
        sender=args.sender,
        name=args.name,
        phone_number_id=phone_number_id,
        button_reply=args.button_reply,
    )
    message_id = document["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    body = json.dumps(document, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"}
    if settings.wpp_app_secret:
        headers["X-Hub-Signature-256"] = sign(body, settings.wpp_app_secret)
    base = args.url.rstrip("/")
    with httpx.Client(timeout=10.0) as client:
        try:
            response = client.post(
                f"{base}/webhooks/whatsapp/webhook", content=body, headers=headers
            )
        except httpx.HTTPError as error:
            print(
                f"could not reach the gateway at {base}: {error}\n"
                "is it running? (whatsapp-gateway serve, "
                "or python3 -m flask --app server run -p 5006)",
                file=sys.stderr,
            )
            return 1
        if response.status_code != 200:
            print(
                f"the gateway answered {response.status_code}: {response.text.strip()}",
                file=sys.stderr,
            )
            if response.status_code == 401:
                print(
                    "hint: run simulate where the gateway's WPP_APP_SECRET is set, so the body is "
                    "signed with it",
                    file=sys.stderr,
                )
            return 1
        print(f"> {args.text or args.button_reply}  ({message_id})")
        return _print_answers(client, base, args.sender, message_id, args.wait)


def _print_answers(client: Any, base: str, contact: str, message_id: str, wait: float) -> int:
    """Poll the sandbox API and print each answer to our message as it arrives."""
    deadline = time.monotonic() + wait
    printed: set[str] = set()
    done = False
    while time.monotonic() < deadline:
        response = client.get(f"{base}/sandbox/conversations/{contact}")
        if response.status_code == 404:
            print(
                "the gateway has no sandbox API (it is not in sandbox mode): "
                "answers went to WhatsApp",
                file=sys.stderr,
            )
            return 0
        if response.status_code != 200:
            print(
                f"the sandbox API answered {response.status_code}: {response.text.strip()}",
                file=sys.stderr,
            )
            return 1
        answers, done = answers_to(response.json().get("messages", []), message_id)
        for key, text in answers:
            if key not in printed:
                printed.add(key)
                print(f"< {text}")
        if done and printed:
            return 0
        if done:
            print("the message was handled but the bot sent no answer", file=sys.stderr)
            return 1
        time.sleep(0.1)
    print(
        f"no answer within {wait:g}s. Is a worker running (WORKERS > 0, or "
        "`whatsapp-gateway worker`)? Is the bot (ANSWER_BACKEND, RASA_URL) reachable? "
        "See the gateway's log.",
        file=sys.stderr,
    )
    return 1


def answers_to(
    entries: list[dict[str, Any]], message_id: str
) -> tuple[list[tuple[str, str]], bool]:
    """The replies to our message in a conversation (`Gateway.conversation`), and whether
    the message is done with (answered, failed or dead)."""
    ours = next(
        (e for e in entries if e.get("direction") == "in" and e.get("wamid") == message_id), None
    )
    if ours is None:
        return [], False
    answers = [
        (str(entry.get("id")), _describe_outgoing(entry))
        for entry in entries
        if entry.get("direction") == "out" and entry.get("in_reply_to") == ours.get("id")
    ]
    return answers, ours.get("state") in ("answered", "failed", "dead")


def _describe_outgoing(entry: dict[str, Any]) -> str:
    body = entry.get("body") or {}
    if isinstance(body, dict):
        kind = body.get("type")
        if kind == "text":
            return str(body.get("text", {}).get("body", ""))
        if kind == "interactive":
            interactive = body.get("interactive", {})
            text = interactive.get("body", {}).get("text", "")
            action = interactive.get("action", {})
            options = [b.get("reply", {}).get("title", "") for b in action.get("buttons", [])]
            for section in action.get("sections", []):
                options += [row.get("title", "") for row in section.get("rows", [])]
            return f"{text} [{' | '.join(options)}]"
    return json.dumps(body, ensure_ascii=False)
