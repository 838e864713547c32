"""`python manage.py whatsapp_worker`: call the bot and send the replies, in this process.

Runs WORKERS threads (at least one) until SIGTERM or SIGINT, then lets the jobs in hand
finish for up to SHUTDOWN_GRACE_SECONDS and gives back those still running; a second signal
gives them back at once (pipeline/process.py, as `whatsapp-gateway worker`). With `--once`,
works what is waiting now and exits (a cron job, a test, a one-off catch-up). Any number of
these may run, on any machine that reaches the store: jobs are leased, and each contact's
messages are worked in order.
"""

from __future__ import annotations

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
        from whatsapp_api_integration.pipeline.process import (
            stop_on_signals,
            worker_process_settings,
        )

        # Sized and stopped as `whatsapp-gateway worker` is (pipeline/process.py).
        settings = worker_process_settings(settings, options["threads"])
        try:
            gateway = build_django_gateway(settings)
        except Exception as error:
            raise CommandError(f"cannot start the worker: {error}") from None
        if options["once"]:
            try:
                worked = gateway.process_available()
            finally:
                gateway.close()
            self.stdout.write(f"worked {worked} job(s)")
            return
        stop = stop_on_signals(gateway)
        self.stdout.write(
            f"WhatsApp worker: mode {settings.mode}, backend {settings.answer_backend}, "
            f"{settings.workers} thread(s), lease {settings.job_lease_seconds:g}s, "
            f"grace {settings.shutdown_grace_seconds:g}s; stop with Ctrl-C or SIGTERM"
        )
        self.stdout.flush()
        gateway.start()
        while not stop.wait(1.0):
            pass
        self.stdout.write(
            "WhatsApp worker: stopping after the jobs in hand "
            f"(up to {settings.shutdown_grace_seconds:g}s; Ctrl-C again to give them back now)"
        )
        self.stdout.flush()
        gateway.close()
