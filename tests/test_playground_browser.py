"""The playground and the operator view in a real browser (headless Chromium via Playwright).

The gateway runs in this process on a loopback port (real HTTP, real worker threads, SQLite),
with WPP_APP_SECRET set so every message the page sends must pass the webhook's signature
check, and the test bot `playground_bot` answering. Chromium is Debian's package
(`apt-get install chromium`); Playwright drives it through `executable_path`, so no browser
is downloaded. Without Chromium the tests are skipped (with the reason) except in CI, where
they fail: `.ci/run` installs it. Screenshots go to test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

import playground_bot
from web_support import (
    APP_SECRET,
    REPO_ROOT,
    ServerProcess,
    cloud_document,
    restore_logging,  # noqa: F401  (autouse fixture)
    settings_for,
    wait_until,
)
from whatsapp_api_integration.core.signature import sign
from whatsapp_api_integration.settings import build_gateway
from whatsapp_api_integration.web.app import create_app

ARTIFACTS = REPO_ROOT / "test-artifacts"
CONTACT = "5561912345678"
TIMEOUT_MS = 20_000
BLUE = "rgb(83, 189, 235)"  # WhatsApp's read ticks


def _chromium() -> str | None:
    for candidate in (
        os.environ.get("CHROMIUM_PATH"),
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the browser tests (.ci/run installs chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    executable = _chromium()
    if executable is None:
        _unavailable("no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)")
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=TIMEOUT_MS)  # a generous wait, not a timing check
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable)
        yield launched
        launched.close()


def _png(width: int, height: int) -> bytes:
    """A small solid PNG, made here so no binary file is needed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rows = b"".join(
        b"\x00"
        + b"".join(
            bytes((0x25 + y // 3, 0xD3 - y // 2, 0x66 + x // 4))
            if (x // 40 + y // 40) % 2
            else bytes((0xF0 - y // 4, 0xF2 - x // 8, 0xE5))
            for x in range(width)
        )
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def image_url() -> Iterator[str]:
    image = _png(320, 180)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(image)))
            self.end_headers()
            self.wfile.write(image)

        def log_message(self, *args: Any) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/mapa.png"
    server.shutdown()
    server.server_close()


class LiveGateway:
    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.settings = settings_for(
            tmp_path,
            ANSWER_BACKEND="playground_bot:answer",
            WPP_APP_SECRET=APP_SECRET,
            WORKERS="2",
            **env,
        )
        self.gateway = build_gateway(self.settings)
        self.app = create_app(self.settings, gateway=self.gateway)
        self.gateway.start()  # our gateway, our threads: close() stops them
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.gateway.close()

    def post_status(self, wamid: str, status: str) -> httpx.Response:
        """A status webhook exactly as Meta posts it, signed with the app secret."""
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": "1"},
            "statuses": [
                {
                    "id": wamid,
                    "status": status,
                    "timestamp": str(int(time.time())),
                    "recipient_id": CONTACT,
                }
            ],
        }
        body = json.dumps(cloud_document(value)).encode()
        return httpx.post(
            f"{self.url}/webhooks/whatsapp/webhook",
            content=body,
            headers={"X-Hub-Signature-256": sign(body, APP_SECRET)},
        )


@pytest.fixture
def live(tmp_path: Path, image_url: str) -> Iterator[LiveGateway]:
    playground_bot.IMAGE_URL = image_url
    playground_bot.received.clear()
    gateway = LiveGateway(tmp_path)
    yield gateway
    gateway.close()


@pytest.fixture
def page(browser: Any, live: LiveGateway, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 720}, locale="pt-BR")
    opened = context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    opened.add_init_script(
        "localStorage.setItem('playground.contact', "
        f"JSON.stringify({{contact: '{CONTACT}', name: 'Joana'}}))"
    )
    yield opened
    ARTIFACTS.mkdir(exist_ok=True)
    opened.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"))
    context.close()


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def write(page: Any, text: str) -> None:
    page.fill("#composer-text", text)
    page.press("#composer-text", "Enter")


def bot_messages(page: Any) -> Any:
    return page.locator(".row.theirs:not(.typing-row)")


def test_a_text_gets_the_echo_with_whatsapp_formatting(page: Any, live: LiveGateway) -> None:
    page.goto(f"{live.url}/playground")
    write(page, "Olá, *bot*! _tudo_ ~bem~? ```x = 1```")
    last = bot_messages(page).last
    expect(last).to_contain_text("Você disse: Olá, bot! tudo bem? x = 1")
    expect(last.locator("strong")).to_have_text("bot")
    expect(last.locator("em")).to_have_text("tudo")
    expect(last.locator("del")).to_have_text("bem")
    expect(last.locator("code.mono")).to_have_text("x = 1")
    # the contact's own bubble, and the bot got the text exactly as written
    expect(page.locator(".row.mine").last).to_contain_text("answered")
    assert playground_bot.received == ["Olá, *bot*! _tudo_ ~bem~? ```x = 1```"]
    # the page reports what it showed as delivered: two grey ticks
    expect(last.locator("[data-testid=ticks]")).to_have_class("ticks delivered")


def test_three_buttons_show_and_a_tap_sends_the_payload(page: Any, live: LiveGateway) -> None:
    page.goto(f"{live.url}/playground")
    write(page, "botões")
    buttons = page.locator(".reply-buttons").last.locator(".reply-button")
    expect(buttons).to_have_text(["Concordo", "Discordo", "Pular"])
    expect(bot_messages(page).last.locator("strong")).to_have_text("Responda")
    assert page.locator(".list-button").count() == 0
    buttons.nth(1).click()
    expect(page.locator(".row.mine").last).to_contain_text("Discordo")
    expect(bot_messages(page).last).to_contain_text('Você disse: /votar{"voto": "nao"}')
    assert playground_bot.received == ["botões", '/votar{"voto": "nao"}']
    # the payload "0" is a real answer too
    page.locator(".reply-buttons").first.locator(".reply-button").nth(2).click()
    assert wait_until(lambda: playground_bot.received[-1:] == ["0"])


def test_seven_options_open_a_list_whose_rows_send_their_ids(page: Any, live: LiveGateway) -> None:
    page.goto(f"{live.url}/playground")
    write(page, "lista")
    menu = page.locator("[data-testid=list-button]").last
    expect(menu).to_contain_text("Opções")
    assert page.locator(".reply-button").count() == 0
    menu.click()
    sheet = page.locator("#sheet")
    expect(sheet).to_be_visible()
    rows = sheet.locator(".list-row")
    expect(rows).to_have_count(7)
    expect(sheet.locator(".sheet-send")).to_be_disabled()
    rows.filter(has_text="Prefiro não dizer").click()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "list-sheet-open.png"))
    sheet.locator(".sheet-send").click()
    expect(sheet).to_be_hidden()
    expect(page.locator(".row.mine").last).to_contain_text("Prefiro não dizer")
    expect(bot_messages(page).last).to_contain_text("Você disse: tema_7")
    assert playground_bot.received == ["lista", "tema_7"]


def test_a_list_shows_its_sections_and_a_row_sends_its_id_and_title(
    page: Any, live: LiveGateway
) -> None:
    page.goto(f"{live.url}/playground")
    write(page, "seções")
    page.locator("[data-testid=list-button]").last.click()
    sheet = page.locator("#sheet")
    expect(sheet.locator(".sheet-title")).to_have_text("Serviços")
    expect(sheet.locator(".section-title")).to_have_text(["Saúde", "Educação"])
    expect(sheet.locator(".list-row")).to_have_count(3)
    creche = sheet.locator(".list-row", has_text="Creche")
    expect(creche.locator(".row-description")).to_have_text("Vagas em creches")
    creche.click()
    sheet.locator(".sheet-send").click()
    mine = page.locator(".row.mine").last
    expect(mine).to_contain_text("Creche")
    expect(mine).to_contain_text("Vagas em creches")
    expect(mine.locator(".quote")).to_contain_text("Escolha um serviço")
    expect(bot_messages(page).last).to_contain_text("Você disse: creche")
    stored = live.gateway.store.recent_contacts()[0]
    assert stored["text"] == "creche"


def test_an_image_and_a_document_show_as_whatsapp_shows_them(
    page: Any, live: LiveGateway, image_url: str
) -> None:
    page.goto(f"{live.url}/playground")
    write(page, "imagem")
    image = bot_messages(page).last.locator("img.image")
    expect(image).to_have_attribute("src", image_url)
    page.wait_for_function(
        "() => [...document.querySelectorAll('img.image')]"
        ".some(i => i.complete && i.naturalWidth === 320)"
    )
    expect(bot_messages(page).last.locator(".caption em")).to_have_text("mapa")
    write(page, "documento")
    document = bot_messages(page).last.locator("a.document")
    expect(document).to_contain_text("edital.pdf")
    expect(document).to_have_attribute("href", image_url.rsplit("/", 1)[0] + "/edital.pdf")


def test_status_events_turn_the_ticks_blue(page: Any, live: LiveGateway) -> None:
    page.goto(f"{live.url}/playground")
    write(page, "primeira")
    first = bot_messages(page).last
    expect(first).to_contain_text("Você disse: primeira")
    ticks = first.locator("[data-testid=ticks]")
    expect(ticks).to_have_class("ticks delivered")
    wamid = first.get_attribute("data-wamid")
    assert wamid
    # A `read` status posted to the webhook as Meta would: the ticks turn blue.
    assert live.post_status(wamid, "read").status_code == 200
    expect(ticks).to_have_class("ticks read")
    assert ticks.evaluate("node => getComputedStyle(node).color") == BLUE
    # And the page's own control does the same through the status path.
    write(page, "segunda")
    second = bot_messages(page).last
    expect(second).to_contain_text("Você disse: segunda")
    expect(second.locator("[data-testid=ticks]")).to_have_class("ticks delivered")
    page.click("#mark-read")
    expect(second.locator("[data-testid=ticks]")).to_have_class("ticks read")
    statuses = live.gateway.store.statuses_of([second.get_attribute("data-wamid") or ""])
    assert [s["status"] for s in next(iter(statuses.values()))] == ["sent", "delivered", "read"]


def test_a_reply_whatsapp_would_reject_is_flagged(page: Any, live: LiveGateway) -> None:
    page.goto(f"{live.url}/playground")
    write(page, "quebrada")
    warning = page.locator("[data-testid=rejection-warning]")
    expect(warning).to_contain_text("4 buttons; between 1 and 3 allowed")
    # a failure WhatsApp reports shows Meta's error
    bot_messages(page).last.hover()
    bot_messages(page).last.locator(".simulate-fail").click()
    expect(page.locator("[data-testid=failure]").last).to_contain_text("131026")


def test_the_operator_view_shows_a_dead_letter_and_replays_it(page: Any, live: LiveGateway) -> None:
    page.goto(f"{live.url}/playground")
    write(page, "falha")
    expect(page.locator(".row.mine").last).to_contain_text("dead letter")
    page.goto(f"{live.url}/ops/")
    letter = page.locator("[data-testid=dead-letter]")
    expect(letter).to_have_count(1)
    expect(letter).to_contain_text("the test bot refuses 'falha' once")
    expect(page.locator("[data-testid=dead-count]")).to_have_text("1")
    expect(page.locator("[data-testid=message-path]").first).to_contain_text("dead letter")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ops-dead-letter.png"))
    letter.locator("button.replay").click()
    expect(letter).to_have_count(0)
    expect(page.locator("[data-testid=dead-count]")).to_have_text("0")
    newest = page.locator("[data-testid=message-path]").first
    expect(newest).to_have_attribute("data-state", "answered")
    expect(newest).to_contain_text("Agora deu certo.")
    # sent; delivered only once a phone (the playground page) shows it
    expect(newest.locator(".reply .step.done")).to_have_text(["sent"])
    assert playground_bot.received == ["falha", "falha"]


def test_off_loopback_the_pages_ask_for_the_admin_token(
    browser: Any, tmp_path: Path, image_url: str
) -> None:
    """Behind a proxy (X-Forwarded-For) the request is not loopback: sign in with the token."""
    token = "admin-token-for-browser-tests-4321"
    live = LiveGateway(tmp_path, ADMIN_TOKEN=token)
    context = browser.new_context(extra_http_headers={"X-Forwarded-For": "203.0.113.7"})
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{live.url}/ops/")
        assert "/ops/login" in page.url
        page.fill("input[name=token]", "not-the-token")
        page.click("button[type=submit]")
        expect(page.locator("[data-testid=login-error]")).to_be_visible()
        assert token not in page.content()
        page.fill("input[name=token]", token)
        page.click("button[type=submit]")
        expect(page.locator("[data-testid=queue-depth]")).to_have_text("0")
        assert token not in page.content()
        cookies = context.cookies()
        assert cookies
        assert all(token not in cookie["value"] for cookie in cookies)
        assert all(cookie["httpOnly"] for cookie in cookies)
    finally:
        context.close()
        live.close()


def test_a_tour_for_the_readme(page: Any, live: LiveGateway) -> None:
    """The README's screenshot (docs/images/playground.png is a copy of
    test-artifacts/readme-playground.png): a text, buttons and a tap, an image."""
    page.set_viewport_size({"width": 1000, "height": 900})
    page.goto(f"{live.url}/playground")
    write(page, "Olá! Quero *participar* da consulta.")
    expect(bot_messages(page).last).to_contain_text("Você disse")
    write(page, "botões")
    page.locator(".reply-buttons").last.locator(".reply-button").first.click()
    expect(bot_messages(page).last).to_contain_text('"sim"')
    write(page, "imagem")
    page.wait_for_function(
        "() => [...document.querySelectorAll('img.image')]"
        ".some(i => i.complete && i.naturalWidth === 320)"
    )
    write(page, "lista")
    expect(page.locator("[data-testid=list-button]")).to_have_count(1)
    page.click("#mark-read")
    expect(page.locator(".ticks.read")).to_have_count(5)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "readme-playground.png"))


def test_serve_prints_the_playground_address_and_serves_it(browser: Any, tmp_path: Path) -> None:
    """What `./scripts/run` runs: `whatsapp-gateway serve` (granian) with no settings at all;
    its start-up banner names the playground, and the echo bot answers there."""
    with ServerProcess(tmp_path, {}) as server:
        assert wait_until(lambda: "/playground" in server.log())
        assert f"Playground:    {server.url}/playground" in server.log()
        context = browser.new_context()
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{server.url}/playground")
            write(page, "Olá do navegador")
            expect(bot_messages(page).last).to_contain_text("Você disse: Olá do navegador")
        finally:
            context.close()
