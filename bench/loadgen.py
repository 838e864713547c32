"""The load tool: wrk with bench/post.lua when `wrk` is on PATH, else a Python stand-in.

Both post the same signed bodies over `connections` keep-alive connections and report the
same figures: posts answered 200, failures, duration and latency percentiles (µs).
The stand-in (asyncio over raw sockets, uvloop when installed) is slower than wrk: it is
there so the harness runs anywhere (CI's smoke test); the published table uses wrk.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.bodies import WEBHOOK_PATH, read_requests

LUA = Path(__file__).with_name("post.lua")


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_load(
    url: str,
    requests_file: Path,
    *,
    connections: int,
    once: bool,
    duration: float,
    tool: str,
    pin: list[str],
) -> dict[str, Any]:
    """Post the bodies of `requests_file`; `once`: each once, else loop for `duration` s."""
    if tool == "wrk":
        return _wrk(url, requests_file, connections, once, duration, pin)
    return _python(url, requests_file, connections, once, duration)


def _wrk(
    url: str, requests_file: Path, connections: int, once: bool, duration: float, pin: list[str]
) -> dict[str, Any]:
    threads = 2 if connections >= 2 else 1
    done_prefix = f"{requests_file}.done-"
    command = [
        *pin,
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "30s",
        "-s",
        str(LUA),
        url,
        "--",
        str(requests_file),
        str(threads),
        "once" if once else "loop",
        WEBHOOK_PATH,
        done_prefix,
    ]
    markers = [Path(f"{done_prefix}{thread}") for thread in range(threads)]
    for marker in markers:
        marker.unlink(missing_ok=True)
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    elapsed = None
    if once:  # wrk runs until its duration: interrupt it once every thread has posted all
        deadline = started + duration
        while process.poll() is None and time.perf_counter() < deadline:
            if all(marker.exists() for marker in markers):
                elapsed = time.perf_counter() - started
                process.send_signal(signal.SIGINT)
                break
            time.sleep(0.005)
    stdout, stderr = process.communicate(timeout=duration + 120)
    elapsed = elapsed if elapsed is not None else time.perf_counter() - started
    for line in stdout.splitlines():
        if line.startswith("BENCHJSON "):
            result: dict[str, Any] = json.loads(line[len("BENCHJSON ") :])
            result["wall_s"] = elapsed
            result["tool"] = "wrk"
            return result
    raise RuntimeError(f"wrk gave no result: {stdout[-500:]} {stderr[-500:]}")


def _python(
    url: str, requests_file: Path, connections: int, once: bool, duration: float
) -> dict[str, Any]:
    requests = read_requests(requests_file)
    coroutine = _post_all(url, requests, connections, once, duration)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


async def _post_all(
    url: str, requests: list[tuple[str, bytes]], connections: int, once: bool, duration: float
) -> dict[str, Any]:
    host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
    latencies: list[float] = []
    counts = {"ok": 0, "failed": 0, "errors": 0, "wrapped": 0}
    position = 0
    started = time.perf_counter()
    deadline = started + duration

    def next_request() -> bytes | None:
        nonlocal position
        if time.perf_counter() > deadline:
            return None
        if position >= len(requests):
            if once or not requests:
                return None
            counts["wrapped"] += 1
        signature, body = requests[position % len(requests)]
        position += 1
        head = (
            f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/json\r\nX-Hub-Signature-256: {signature}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while (request := next_request()) is not None:
                sent = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split(" ", 2)[1])
                length = 0
                chunked = False
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                    elif name.lower() == "transfer-encoding" and "chunked" in value.lower():
                        chunked = True
                if chunked:
                    while True:
                        size = int((await reader.readline()).strip(), 16)
                        await reader.readexactly(size + 2)
                        if size == 0:
                            break
                elif length:
                    await reader.readexactly(length)
                latencies.append(time.perf_counter() - sent)
                counts["ok" if status == 200 else "failed"] += 1
        except (OSError, asyncio.IncompleteReadError):
            counts["errors"] += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies) or [0.0]

    def percentile(fraction: float) -> int:
        return int(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1e6)

    return {
        **counts,
        "requests": len(latencies),
        "duration_us": int(elapsed * 1e6),
        "p50_us": percentile(0.5),
        "p90_us": percentile(0.9),
        "p99_us": percentile(0.99),
        "max_us": int(ordered[-1] * 1e6),
        "wall_s": elapsed,
        "tool": "python",
    }
