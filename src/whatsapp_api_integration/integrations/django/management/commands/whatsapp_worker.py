"""`python manage.py whatsapp_worker`: call the bot and send the replies, in this process.

Runs WORKERS threads (at least one) until SIGTERM or SIGINT, then lets the jobs in hand
finish. With `--once`, works what is waiting now and exits (a cron job, a test, a one-off
catch-up). Any number of these may run, on any machine that reaches the store: jobs are
leased, and each contact's messages are worked in order.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from whatsapp_api_integration.integrations.django.conf import load_gateway_settings
from whatsapp_api_integration.integrations.django.runtime import build_django_gateway
from whatsapp_api_integration.settings import SettingsError


class Command(BaseCommand):
    help = "Work the WhatsApp gateway's jobs: ask the bot, send its replies."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--threads",
            type=int,
            default=None,
            help="worker threads (default: WORKERS, at least 1)",
        )
        parser.add_argument(
            "--once",
            action="store_true",
            help="work the jobs available now, then exit",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            settings = load_gateway_settings()
        except SettingsError as error:
            raise CommandError(str(error)) from None
        threads = max(1, options["threads"] if options["threads"] is not None else settings.workers)
        try:
            gateway = build_django_gateway(settings, workers=threads)
        except Exception as error:
            raise CommandError(f"cannot start the worker: {error}") from None
        if options["once"]:
            try:
                worked = gateway.process_available()
            finally:
                gateway.close()
            self.stdout.write(f"worked {worked} job(s)")
            return
        stop = threading.Event()

        def request_stop(signum: int, frame: object) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        self.stdout.write(
            f"WhatsApp worker: mode {settings.mode}, backend {settings.answer_backend}, "
            f"{threads} thread(s); stop with Ctrl-C or SIGTERM"
        )
        gateway.start()
        while not stop.wait(1.0):
            pass
        self.stdout.write("WhatsApp worker: stopping after the jobs in hand")
        gateway.close()
