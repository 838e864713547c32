"""`python -m bench`: every scenario against every target, side by side, in one run.

Targets (each a WSGI app under a server; same server settings for all: 1 process, 8 threads):
  bare      Flask endpoint answering 200: the server's own ceiling
  sync      the original design: bot call and sends inside the request
  pywa      pywa's Flask webhook, handler asks the bot and replies (inside the request)
  gateway   this project: verify, store, 200; workers ask the bot and send
under granian (what `whatsapp-gateway serve` runs) and, for bare and gateway, gunicorn gthread.

Scenarios:
  S1 ack: POST at concurrency 32 for --seconds; acks/s and p50/p99 (workers running).
  S2 end to end: --messages posted as fast as accepted; time until the fake Graph has every
     reply; lost, duplicated and out-of-order replies counted.
  S3 slow bot (--bot-delay, 0.5 s): ack p50/p99 and end-to-end messages/s.
  S4 S2 on PostgreSQL (TEST_DATABASE_URL or --postgres, a fresh schema), web and worker split.

Pinning (when `taskset` exists): every server process on CPU 0; this runner, the fakes and
the load tool on CPU 1. Results: a table on stdout and JSON (--json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import bodies
from bench.loadgen import run_load, wrk_available

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SERVER_CPU, LOAD_CPU = "0", "1"
THREADS = 8
CONTACTS = 500


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # bare | sync | pywa | gateway
    server: str  # granian | gunicorn
    split: bool = False  # gateway: `serve --no-worker` + `worker` (nice 10) processes
    postgres: bool = False  # gateway: on PostgreSQL (S4 only)
    threads: bool = False  # gateway: worker threads inside the server process
    env: tuple[tuple[str, str], ...] = ()  # gateway: extra settings
    serve_args: tuple[str, ...] = ()  # gateway: extra `serve` options

    @property
    def label(self) -> str:
        return f"{self.name}"


TARGETS = (
    Target("bare (granian)", "bare", "granian"),
    Target("bare (gunicorn)", "bare", "gunicorn"),
    Target("sync design (granian)", "sync", "granian"),
    Target("pywa (granian)", "pywa", "granian"),
    Target("gateway (granian)", "gateway", "granian"),
    Target(
        "gateway, worker idle (granian)", "gateway", "granian", serve_args=("--worker-nice", "idle")
    ),
    Target("gateway (gunicorn)", "gateway", "gunicorn"),
    Target("gateway, worker threads (granian)", "gateway", "granian", threads=True),
    Target(
        "gateway, STORE_FLUSH=none (granian)", "gateway", "granian", env=(("STORE_FLUSH", "none"),)
    ),
    Target("gateway split, PostgreSQL (granian)", "gateway", "granian", split=True, postgres=True),
)
APP_MODULES = {"bare": "bench.apps.bare:app", "sync": "bench.apps.sync_gateway:app"}
APP_MODULES["pywa"] = "bench.apps.pywa_echo:app"


@dataclass
class Options:
    seconds: float = 10.0
    messages: int = 5000
    slow_messages: int = 1000
    bot_delay: float = 0.5
    connections: int = 32
    workers: int = 8
    slow_workers: int = 500
    postgres: str | None = None
    tool: str = "wrk"
    scenarios: tuple[str, ...] = ("S1", "S2", "S3", "S4")
    targets: tuple[str, ...] = ()
    profile: Path | None = None
    pin: bool = True
    smoke: bool = False
    results: list[dict[str, Any]] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pinned(cpu: str, command: list[str], options: Options) -> list[str]:
    if options.pin and shutil.which("taskset"):
        return ["taskset", "-c", cpu, *command]
    return command


def wait_until_up(url: str, seconds: float = 60.0, process: Any = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before it answered")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f}s")


# ---- fakes ---------------------------------------------------------------------------------


class Fakes:
    def __init__(self, options: Options) -> None:
        self.graph_port, self.rasa_port = free_port(), free_port()
        command = [
            sys.executable,
            "-m",
            "bench.fakes",
            "--graph-port",
            str(self.graph_port),
            "--rasa-port",
            str(self.rasa_port),
        ]
        self.process = subprocess.Popen(
            pinned(LOAD_CPU, command, options), cwd=REPO, start_new_session=True
        )
        self.graph = f"http://127.0.0.1:{self.graph_port}"
        self.rasa = f"http://127.0.0.1:{self.rasa_port}"
        wait_until_up(f"{self.graph}/_ping", process=self.process)
        wait_until_up(f"{self.rasa}/_ping", process=self.process)

    def reset(self, rasa_delay: float) -> None:
        httpx.post(f"{self.graph}/_reset", json={"rasa_delay": rasa_delay}, timeout=10)

    def replies(self) -> int:
        return int(httpx.get(f"{self.graph}/_stats", timeout=10).json()["replies"])

    def reply_list(self) -> list[tuple[str, str]]:
        return [tuple(item) for item in httpx.get(f"{self.graph}/_replies", timeout=60).json()]

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(10)


# ---- servers -------------------------------------------------------------------------------


def gateway_env(fakes: Fakes, database_url: str, workers: int) -> dict[str, str]:
    return {
        "WPP_AUTHORIZATION_TOKEN": bodies.ACCESS_TOKEN,
        "WPP_API_BASE_URL": fakes.graph,
        "WPP_APP_SECRET": bodies.APP_SECRET,
        "WPP_VERIFY_TOKEN": bodies.VERIFY_TOKEN,
        "WPP_PHONE_NUMBER_IDENTIFIER": bodies.PHONE_NUMBER_ID,
        "RASA_URL": fakes.rasa,
        "RASA_TIMEOUT": "30",
        "DATABASE_URL": database_url,
        "WORKERS": str(workers),
        "SEND_RATE": "100000",  # pacing is not what is measured here
        "SEND_BURST": "100000",
        "LOG_LEVEL": "WARNING",
    }


@contextlib.contextmanager
def serving(
    target: Target, fakes: Fakes, options: Options, *, workers: int, database_url: str | None
) -> Iterator[tuple[str, list[int]]]:
    """Run `target` on CPU 0; yield its base URL and the pids of its processes."""
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="bench_"))
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "BENCH_GRAPH_URL": fakes.graph,
        "BENCH_RASA_URL": fakes.rasa,
    }
    database_url = database_url or f"sqlite:///{folder / 'gateway.db'}"
    commands: list[list[str]] = []
    if target.kind == "gateway":
        env.update(gateway_env(fakes, database_url, workers))
        env.update(dict(target.env))
        # As `serve` does by default: the webhook first, the worker takes the CPU left.
        worker = ["nice", "-n", "10", str(BIN / "whatsapp-gateway"), "worker"]
        if target.server == "granian":
            serve = [str(BIN / "whatsapp-gateway"), "serve", "--port", str(port)]
            serve += ["--threads", str(THREADS), *target.serve_args]
            if target.split:
                commands += [[*serve, "--no-worker"], worker]
            elif target.threads:
                commands.append([*serve, "--workers-per-process", str(workers)])
            else:
                commands.append(serve)  # its own worker process
        else:
            app = "whatsapp_api_integration.web.app:create_app()"
            commands += [["env", "WORKERS=0", *gunicorn(port, app, options)], worker]
    else:
        module = APP_MODULES[target.kind]
        if target.server == "granian":
            commands.append(granian(port, module))
        else:
            commands.append(gunicorn(port, module, options))
    processes = [
        subprocess.Popen(
            pinned(SERVER_CPU, command, options),
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(folder / f"server{index}.log").open("wb"),
            start_new_session=True,
        )
        for index, command in enumerate(commands)
    ]
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/healthz", process=processes[0])
        yield url, [process.pid for process in processes]
    except Exception:
        for index in range(len(processes)):
            log = (folder / f"server{index}.log").read_text(errors="replace")[-2000:]
            print(f"--- server {index} log ---\n{log}", file=sys.stderr)
        raise
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def granian(port: int, module: str) -> list[str]:
    return [
        str(BIN / "granian"),
        "--interface",
        "wsgi",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--blocking-threads",
        str(THREADS),
        "--no-access-log",
        "--log-level",
        "warning",
        module,
    ]


def gunicorn(port: int, module: str, options: Options) -> list[str]:
    return [
        str(BIN / "gunicorn"),
        "--worker-class",
        "gthread",
        "--workers",
        "1",
        "--threads",
        str(THREADS),
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "--timeout",
        "120",
        module,
    ]


# ---- profiling -----------------------------------------------------------------------------


@contextlib.contextmanager
def profiling(pids: list[int], name: str, options: Options) -> Iterator[None]:
    spy = shutil.which("py-spy") or str(BIN / "py-spy")
    if options.profile is None or not Path(spy).exists():
        yield
        return
    options.profile.mkdir(parents=True, exist_ok=True)
    spies = []
    for pid in pids:
        out = options.profile / f"{name}-{pid}.txt"
        command = [spy, "record", "--pid", str(pid), "--subprocesses", "--rate", "250"]
        command += ["--format", "raw", "--output", str(out), "--nonblocking"]
        spies.append(
            subprocess.Popen(
                pinned(LOAD_CPU, command, options),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        yield
    finally:
        for recorder in spies:
            recorder.send_signal(signal.SIGINT)
        for recorder in spies:
            with contextlib.suppress(subprocess.TimeoutExpired):
                recorder.wait(30)


# ---- scenarios -----------------------------------------------------------------------------


def check_replies(replies: list[tuple[str, str]], messages: int) -> dict[str, int]:
    """Lost, duplicated and out-of-order replies, from "Você disse: m<index>" texts."""
    seen: dict[int, int] = {}
    last_per_contact: dict[int, int] = {}
    out_of_order = 0
    for _to, text in replies:
        if not text or not text.startswith("Você disse: m"):
            continue
        index = int(text.rsplit("m", 1)[1])
        seen[index] = seen.get(index, 0) + 1
        contact = index % CONTACTS
        if last_per_contact.get(contact, -1) > index:
            out_of_order += 1
        last_per_contact[contact] = max(index, last_per_contact.get(contact, -1))
    return {
        "answered": sum(1 for index in range(messages) if index in seen),
        "lost": sum(1 for index in range(messages) if index not in seen),
        "duplicated": sum(count - 1 for count in seen.values()),
        "out_of_order": out_of_order,
    }


def load_url(url: str) -> str:
    return url


def ack(target: Target, fakes: Fakes, options: Options, folder: Path) -> dict[str, Any]:
    """S1: acks/s and latency at concurrency N for a fixed time, workers running."""
    fakes.reset(0.0)
    estimate = int(options.seconds * 15000) if options.tool == "wrk" else 20000
    requests = bodies.write_requests(folder / "s1.txt", max(estimate, 1000), CONTACTS)
    with (
        serving(target, fakes, options, workers=options.workers, database_url=None) as (
            url,
            pids,
        ),
        profiling(pids, f"S1-{slug(target)}", options),
    ):
        load = run_load(
            url,
            requests,
            connections=options.connections,
            once=False,
            duration=options.seconds,
            tool=options.tool,
            pin=pinned(LOAD_CPU, [], options),
        )
    seconds = load["duration_us"] / 1e6
    return {
        "acks_per_s": load["ok"] / seconds if seconds else 0.0,
        "p50_ms": load["p50_us"] / 1000,
        "p99_ms": load["p99_us"] / 1000,
        "non_200": load["failed"],
        "socket_errors": load["errors"],
        "repeated_bodies": load["wrapped"],
        "tool": load["tool"],
    }


def end_to_end(
    target: Target,
    fakes: Fakes,
    options: Options,
    folder: Path,
    *,
    messages: int,
    delay: float,
    workers: int,
    database_url: str | None = None,
) -> dict[str, Any]:
    """S2/S3/S4: post `messages` once each, as fast as accepted; wait for every reply."""
    fakes.reset(delay)
    requests = bodies.write_requests(folder / "e2e.txt", messages, CONTACTS)
    scenario = "S3" if delay else "S2"
    with (
        serving(target, fakes, options, workers=workers, database_url=database_url) as (
            url,
            pids,
        ),
        profiling(pids, f"{scenario}-{slug(target)}", options),
    ):
        started = time.perf_counter()
        load = run_load(
            url,
            requests,
            connections=options.connections,
            once=True,
            duration=600,
            tool=options.tool,
            pin=pinned(LOAD_CPU, [], options),
        )
        posted = time.perf_counter() - started
        last, last_change = -1, time.monotonic()
        while True:
            count = fakes.replies()
            if count >= messages:
                break
            if count != last:
                last, last_change = count, time.monotonic()
            elif time.monotonic() - last_change > 30:
                break  # no progress for 30 s: report what arrived
            time.sleep(0.02)
        finished = time.perf_counter() - started
        time.sleep(0.5 if not options.smoke else 0.2)  # late duplicates would show now
        checked = check_replies(fakes.reply_list(), messages)
    return {
        "messages": messages,
        "posted_per_s": load["ok"] / posted if posted else 0.0,
        "msgs_per_s": checked["answered"] / finished if finished else 0.0,
        "seconds": finished,
        "ack_p50_ms": load["p50_us"] / 1000,
        "ack_p99_ms": load["p99_us"] / 1000,
        "non_200": load["failed"],
        "socket_errors": load["errors"],
        **checked,
        "tool": load["tool"],
    }


def slug(target: Target) -> str:
    """`gateway split, PostgreSQL (granian)` -> `gateway-split-postgresql-granian`."""
    return "-".join(re.findall(r"[a-z0-9_]+", target.name.lower()))


@contextlib.contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    import sqlalchemy

    from whatsapp_api_integration.store import Store

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = Store(url).engine
    with admin.begin() as connection:
        connection.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    scoped = sqlalchemy.engine.make_url(url).update_query_dict(
        {"options": f"-csearch_path={schema}"}
    )
    try:
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# ---- ceilings of the fakes -----------------------------------------------------------------


def fake_ceilings(fakes: Fakes, options: Options, folder: Path) -> dict[str, float]:
    """Requests/s the fakes answer with the load tool beside them on CPU 1 (a lower bound)."""
    if options.tool != "wrk":
        return {}
    ceilings = {}
    for name, url, path, body in (
        (
            "fake Graph",
            fakes.graph,
            f"/v23.0/{bodies.PHONE_NUMBER_ID}/messages",
            '{"messaging_product":"whatsapp","to":"5561900000000","type":"text","text":{"body":"x"}}',
        ),
        (
            "fake Rasa",
            fakes.rasa,
            "/webhooks/rest/webhook",
            '{"sender":"+5561900000000","message":"x"}',
        ),
    ):
        script = folder / "ceiling.lua"
        script.write_text(
            f'wrk.method = "POST"\nwrk.path = "{path}"\nwrk.body = {json.dumps(body)}\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {bodies.ACCESS_TOKEN}"\n'
        )
        fakes.reset(0.0)
        command = pinned(LOAD_CPU, ["wrk", "-t1", "-c32", "-d3s", "-s", str(script), url], options)
        output = subprocess.run(command, capture_output=True, text=True, timeout=60).stdout
        for line in output.splitlines():
            if line.startswith("Requests/sec:"):
                ceilings[name] = float(line.split()[1])
    fakes.reset(0.0)
    return ceilings


# ---- the run -------------------------------------------------------------------------------


def selected(options: Options) -> list[Target]:
    chosen = [t for t in TARGETS if not options.targets or slug(t) in options.targets]
    available = []
    for target in chosen:
        if target.server == "gunicorn" and not (BIN / "gunicorn").exists():
            print(f"skipped {target.name}: gunicorn not installed (pip install -e '.[bench]')")
            continue
        if target.kind == "pywa" and not _importable("pywa"):
            print(f"skipped {target.name}: pywa not installed (pip install -e '.[bench]')")
            continue
        available.append(target)
    return available


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def record(options: Options, scenario: str, target: Target, figures: dict[str, Any]) -> None:
    entry = {"scenario": scenario, "target": target.name, **figures}
    options.results.append(entry)
    shown = {k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}
    print(f"  {scenario} {target.name}: {shown}", flush=True)


def run(options: Options) -> dict[str, Any]:
    if options.pin and shutil.which("taskset"):
        os.sched_setaffinity(0, {int(LOAD_CPU)})
    targets = selected(options)
    folder = Path(tempfile.mkdtemp(prefix="bench_run_"))
    fakes = Fakes(options)
    started = time.time()
    try:
        ceilings = fake_ceilings(fakes, options, folder)
        for name, rate in ceilings.items():
            print(f"  ceiling {name}: {rate:.0f} requests/s", flush=True)
        for target in targets:
            if "S1" in options.scenarios and not target.postgres:
                record(options, "S1", target, ack(target, fakes, options, folder))
        for target in targets:
            if target.kind == "bare" or target.postgres:
                continue
            if "S2" in options.scenarios:
                figures = end_to_end(
                    target,
                    fakes,
                    options,
                    folder,
                    messages=options.messages,
                    delay=0.0,
                    workers=options.workers,
                )
                record(options, "S2", target, figures)
        for target in targets:
            if target.kind == "bare" or target.postgres:
                continue
            if "S3" in options.scenarios:
                figures = end_to_end(
                    target,
                    fakes,
                    options,
                    folder,
                    messages=options.slow_messages,
                    delay=options.bot_delay,
                    workers=options.slow_workers,
                )
                record(options, "S3", target, figures)
        postgres = options.postgres or os.environ.get("TEST_DATABASE_URL")
        if "S4" in options.scenarios:
            split = [t for t in targets if t.postgres]
            if not postgres:
                print("skipped S4: no PostgreSQL (set TEST_DATABASE_URL or --postgres)")
            for target in split if postgres else []:
                assert postgres is not None
                with postgres_schema(postgres) as database_url:
                    figures = end_to_end(
                        target,
                        fakes,
                        options,
                        folder,
                        messages=options.messages,
                        delay=0.0,
                        workers=options.workers,
                        database_url=database_url,
                    )
                record(options, "S4", target, figures)
    finally:
        fakes.close()
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": machine(),
        "settings": {
            "server_cpu": SERVER_CPU if options.pin else None,
            "load_cpu": LOAD_CPU if options.pin else None,
            "server_threads": THREADS,
            "connections": options.connections,
            "seconds": options.seconds,
            "messages": options.messages,
            "slow_messages": options.slow_messages,
            "bot_delay_s": options.bot_delay,
            "gateway_workers": options.workers,
            "gateway_workers_slow_bot": options.slow_workers,
            "contacts": CONTACTS,
            "load_tool": options.tool,
        },
        "fake_ceilings": ceilings,
        "results": options.results,
    }


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": os.getloadavg(),
    }


# ---- table ---------------------------------------------------------------------------------


def table(report: dict[str, Any]) -> str:
    results = report["results"]

    def find(scenario: str, kind_name: str) -> dict[str, Any] | None:
        return next(
            (r for r in results if r["scenario"] == scenario and r["target"] == kind_name), None
        )

    lines = [
        "| scenario | target | figures | ratio to bare | ratio to sync design |",
        "|---|---|---|---|---|",
    ]
    for entry in results:
        scenario, name = entry["scenario"], entry["target"]
        server = "gunicorn" if "gunicorn" in name else "granian"
        if scenario == "S1":
            figures = (
                f"{entry['acks_per_s']:,.0f} acks/s, p50 {entry['p50_ms']:.1f} ms, "
                f"p99 {entry['p99_ms']:.1f} ms"
            )
            value, key = entry["acks_per_s"], "acks_per_s"
        else:
            figures = (
                f"{entry['msgs_per_s']:,.0f} msg/s, ack p50 {entry['ack_p50_ms']:.1f} ms, "
                f"p99 {entry['ack_p99_ms']:.1f} ms; lost {entry['lost']}, "
                f"dup {entry['duplicated']}, order {entry['out_of_order']}"
            )
            value, key = entry["msgs_per_s"], "msgs_per_s"
        if entry.get("non_200"):
            figures += f"; non-200 {entry['non_200']}"
        bare = find("S1", f"bare ({server})") if scenario == "S1" else None
        sync = find(scenario if scenario != "S4" else "S2", "sync design (granian)")
        to_bare = f"{value / bare[key]:.2f}×" if bare and bare[key] else "–"
        to_sync = f"{value / sync[key]:.2f}×" if sync and sync[key] else "–"
        lines.append(f"| {scenario} | {name} | {figures} | {to_bare} | {to_sync} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="S1 duration (10)")
    parser.add_argument("--messages", type=int, default=5000, help="S2/S4 messages (5000)")
    parser.add_argument("--slow-messages", type=int, default=1000, help="S3 messages (1000)")
    parser.add_argument("--bot-delay", type=float, default=0.5, help="S3 bot delay, s (0.5)")
    parser.add_argument("--connections", type=int, default=32, help="load concurrency (32)")
    parser.add_argument("--workers", type=int, default=8, help="gateway WORKERS in S1/S2/S4")
    parser.add_argument("--slow-workers", type=int, default=500, help="gateway WORKERS in S3 (500)")
    parser.add_argument("--postgres", help="PostgreSQL URL for S4 (default TEST_DATABASE_URL)")
    parser.add_argument("--scenarios", default="S1,S2,S3,S4", help="comma-separated")
    parser.add_argument("--targets", default="", help="comma-separated target slugs (all)")
    parser.add_argument("--tool", choices=("wrk", "python"), help="load tool (wrk if on PATH)")
    parser.add_argument("--profile", type=Path, help="py-spy raw profiles into this folder")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to CPUs")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results.json")
    parser.add_argument("--smoke", action="store_true", help="a tiny run that checks the harness")
    args = parser.parse_args(argv)
    options = Options(
        seconds=args.seconds,
        messages=args.messages,
        slow_messages=args.slow_messages,
        bot_delay=args.bot_delay,
        connections=args.connections,
        workers=args.workers,
        slow_workers=args.slow_workers,
        postgres=args.postgres,
        tool=args.tool or ("wrk" if wrk_available() else "python"),
        scenarios=tuple(s.strip() for s in args.scenarios.split(",") if s.strip()),
        targets=tuple(t.strip() for t in args.targets.split(",") if t.strip()),
        profile=args.profile,
        pin=not args.no_pin,
        smoke=args.smoke,
    )
    if args.smoke:
        options.seconds, options.messages, options.slow_messages = 1.0, 200, 100
        options.bot_delay, options.connections, options.slow_workers = 0.05, 8, 16
    print(f"load tool: {options.tool}; server on CPU {SERVER_CPU}, load and fakes on {LOAD_CPU}")
    report = run(options)
    print()
    print(table(report))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"\nJSON: {args.json}")
    return 0
