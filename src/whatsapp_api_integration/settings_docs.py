"""What each setting means, in English and Brazilian Portuguese: the source of
`docs/reference/settings.md` and `docs/reference/settings.pt-BR.md`.

Adding a setting to `settings.SETTING_NAMES`? Add its entry here too, then run
`scripts/gen-reference`: `tests/test_reference.py` fails while a name in SETTING_NAMES has no
entry, or while the committed reference differs from what the code generates.

The default shown is the `Settings` dataclass field's default, unless `default` says otherwise
(for a default that depends on other settings). A secret (`*_TOKEN`, `*_SECRET`) never has a
default worth showing.
"""

from __future__ import annotations

from dataclasses import dataclass

# Sections of the reference, in order: (key, English title, Portuguese title).
GROUPS: tuple[tuple[str, str, str], ...] = (
    ("cloud_api", "Meta Cloud API", "Cloud API da Meta"),
    ("serpro", "SERPRO", "SERPRO"),
    ("bot", "The bot (answer backend)", "O bot (backend de respostas)"),
    ("store", "Store, workers and retries", "Banco, workers e novas tentativas"),
    ("replies", "Shaping replies", "Formato das respostas"),
    ("webhook", "Webhook and identities", "Webhook e identidades"),
    ("operations", "Playground, operator views and logs", "Playground, operação e logs"),
)


@dataclass(frozen=True)
class SettingDoc:
    group: str
    en: str
    pt: str
    # Shown instead of the dataclass default when the default depends on other settings.
    default_en: str | None = None
    default_pt: str | None = None


SETTING_DOCS: dict[str, SettingDoc] = {
    # ---- Meta Cloud API --------------------------------------------------------------------
    "WPP_AUTHORIZATION_TOKEN": SettingDoc(
        "cloud_api",
        "Cloud API access token (sent as `Authorization: Bearer`). Unset, with no SERPRO "
        "credentials either: **sandbox** mode, replies are recorded and shown, not sent.",
        "Token de acesso da Cloud API (enviado como `Authorization: Bearer`). Sem ele e sem "
        "credenciais do SERPRO: modo **sandbox**, as respostas são registradas e mostradas, "
        "não enviadas.",
    ),
    "WPP_VERIFY_TOKEN": SettingDoc(
        "cloud_api",
        "Any string you choose; Meta sends it back in the webhook handshake "
        "(`hub.verify_token`), and you type the same value in the app's webhook settings.",
        "Qualquer texto que você escolher; a Meta o devolve na verificação do webhook "
        "(`hub.verify_token`), e você digita o mesmo valor na configuração do webhook do app.",
    ),
    "WPP_PHONE_NUMBER_IDENTIFIER": SettingDoc(
        "cloud_api",
        "Phone number id (not the phone number) that sends proactive messages and that the "
        "sandbox simulates. Replies always go out from the number the message arrived at.",
        "Identificador do número de telefone (não o número em si) que envia mensagens "
        "proativas e que o sandbox simula. Respostas saem sempre do número que recebeu a "
        "mensagem.",
    ),
    "WPP_APP_SECRET": SettingDoc(
        "cloud_api",
        "The app secret (App settings → Basic). When set, every Cloud API webhook must carry a "
        "valid `X-Hub-Signature-256`, or it gets 401.",
        "A chave secreta do app (Configurações do app → Básico). Com ela, todo webhook da "
        "Cloud API precisa de um `X-Hub-Signature-256` válido, senão recebe 401.",
    ),
    "WPP_API_VERSION": SettingDoc(
        "cloud_api",
        "Graph API version used in request paths, `vNN.N`.",
        "Versão da Graph API usada nos caminhos das requisições, `vNN.N`.",
    ),
    "WPP_API_BASE_URL": SettingDoc(
        "cloud_api",
        "Graph API base URL (tests point it at a local fake).",
        "URL base da Graph API (os testes a apontam para um servidor falso local).",
    ),
    # ---- SERPRO ----------------------------------------------------------------------------
    "SERPRO_CLIENT_ID": SettingDoc(
        "serpro",
        "SERPRO OAuth client id (SERPRO sends it with your credentials).",
        "Client ID OAuth do SERPRO (enviado pelo SERPRO com as credenciais).",
    ),
    "SERPRO_CLIENT_SECRET": SettingDoc(
        "serpro",
        "SERPRO OAuth client secret. With `SERPRO_CLIENT_ID`, turns SERPRO on.",
        "Secret OAuth do SERPRO. Com o `SERPRO_CLIENT_ID`, liga o SERPRO.",
    ),
    "SERPRO_WABA_ID": SettingDoc(
        "serpro",
        "WhatsApp Business Account id at SERPRO (for templates).",
        "Identificador da conta WhatsApp Business (WABA) no SERPRO (para templates).",
    ),
    "SERPRO_PHONE_NUMBER_ID": SettingDoc(
        "serpro",
        "SERPRO's `fromPhoneNumberId`, used in every request path.",
        "O `fromPhoneNumberId` do SERPRO, usado no caminho de toda requisição.",
        default_en="`SERPRO_CLIENT_ID`",
        default_pt="`SERPRO_CLIENT_ID`",
    ),
    "SERPRO_API_BASE_URL": SettingDoc(
        "serpro",
        "SERPRO API base URL (tests point it at a local fake).",
        "URL base da API do SERPRO (os testes a apontam para um servidor falso local).",
    ),
    "SERPRO_WEBHOOK_TOKEN": SettingDoc(
        "serpro",
        "Registered at SERPRO as the webhook's `jwtToken`; when set, SERPRO's webhook calls "
        "must carry `Authorization: Bearer <it>`, or they get 401.",
        "Registrado no SERPRO como `jwtToken` do webhook; quando definido, as chamadas do "
        "SERPRO ao webhook precisam de `Authorization: Bearer <ele>`, senão recebem 401.",
    ),
    "RASA_WEBHOOK_URL": SettingDoc(
        "serpro",
        "This gateway's public webhook URL, the one registered at SERPRO "
        "(`https://<host>/webhooks/whatsapp/webhook`). The name is the original project's.",
        "A URL pública do webhook deste gateway, a registrada no SERPRO "
        "(`https://<host>/webhooks/whatsapp/webhook`). O nome é o do projeto original.",
    ),
    "WHATSAPP_PROVIDER": SettingDoc(
        "serpro",
        "Provider for proactive messages: `cloud_api` or `serpro`. Replies always use the "
        "provider their message came from.",
        "Provedor das mensagens proativas: `cloud_api` ou `serpro`. Respostas usam sempre o "
        "provedor de onde veio a mensagem.",
        default_en="`serpro` when only SERPRO is configured, else `cloud_api`",
        default_pt="`serpro` quando só o SERPRO está configurado, senão `cloud_api`",
    ),
    # ---- the bot ---------------------------------------------------------------------------
    "ANSWER_BACKEND": SettingDoc(
        "bot",
        "Who answers: `rasa` (HTTP to Rasa's REST channel), `echo`, or "
        "`package.module:callable` (a Python function, sync or async).",
        "Quem responde: `rasa` (HTTP para o canal REST do Rasa), `echo`, ou "
        "`pacote.modulo:funcao` (uma função Python, síncrona ou assíncrona).",
        default_en="`rasa` when `RASA_URL` is set, else `echo`",
        default_pt="`rasa` quando `RASA_URL` está definida, senão `echo`",
    ),
    "RASA_URL": SettingDoc(
        "bot",
        "Rasa server base URL, e.g. `http://localhost:5005`.",
        "URL base do servidor Rasa, por exemplo `http://localhost:5005`.",
    ),
    "RASA_TIMEOUT": SettingDoc(
        "bot",
        "Seconds one backend call may take before it counts as failed (and is retried).",
        "Segundos que uma chamada ao backend pode levar antes de contar como falha (e ser "
        "tentada de novo).",
    ),
    # ---- store and workers -----------------------------------------------------------------
    "DATABASE_URL": SettingDoc(
        "store",
        "SQLAlchemy URL of the store: a SQLite file, or PostgreSQL "
        "(`postgresql+psycopg://user:password@host/db`) for several processes or machines.",
        "URL SQLAlchemy do banco: um arquivo SQLite, ou PostgreSQL "
        "(`postgresql+psycopg://usuario:senha@host/banco`) para vários processos ou máquinas.",
    ),
    "WORKERS": SettingDoc(
        "store",
        "Job worker threads per process (call the bot, send replies). 0: the web process "
        "works no jobs; run `whatsapp-gateway worker` beside it.",
        "Threads de trabalho por processo (chamam o bot, enviam respostas). 0: o processo "
        "web não trabalha; rode `whatsapp-gateway worker` ao lado.",
    ),
    "MAX_ATTEMPTS": SettingDoc(
        "store",
        "Tries of one message before it becomes a dead letter (replayable).",
        "Tentativas de uma mensagem antes de virar carta morta (dead letter, reprocessável).",
    ),
    "JOB_LEASE_SECONDS": SettingDoc(
        "store",
        "How long a worker holds a job before another may take it back (a worker that died). "
        "Must be longer than `RASA_TIMEOUT`.",
        "Por quanto tempo um worker segura uma tarefa antes que outro possa retomá-la (um "
        "worker que morreu). Precisa ser maior que `RASA_TIMEOUT`.",
    ),
    "SEND_RATE": SettingDoc(
        "store",
        "Messages per second per sending number, shared by every process (Meta's default "
        "throughput is 80).",
        "Mensagens por segundo por número remetente, somando todos os processos (a vazão "
        "padrão da Meta é 80).",
    ),
    "SEND_BURST": SettingDoc(
        "store",
        "How many messages may go at once before `SEND_RATE` paces them.",
        "Quantas mensagens podem sair de uma vez antes que `SEND_RATE` as cadencie.",
    ),
    # ---- replies ---------------------------------------------------------------------------
    "LIST_BUTTON_LABEL": SettingDoc(
        "replies",
        "Label of the button that opens a list (at most 20 characters).",
        "Rótulo do botão que abre uma lista (até 20 caracteres).",
    ),
    "INTERACTIVE_FALLBACK_BODY": SettingDoc(
        "replies",
        "Body of an interactive message whose text was sent apart (too long) or was missing.",
        "Corpo de uma mensagem interativa cujo texto foi enviado à parte (longo demais) ou faltou.",
    ),
    "MORE_OPTIONS_BODY": SettingDoc(
        "replies",
        "Body of the 2nd and later lists when the options do not fit in one (more than 10).",
        "Corpo da 2ª lista em diante quando as opções não cabem em uma (mais de 10).",
    ),
    # ---- webhook and identities ------------------------------------------------------------
    "MAX_BODY_BYTES": SettingDoc(
        "webhook",
        "Larger webhook bodies get 413 (Meta batches up to 1,000 updates, about 3 MB).",
        "Corpos de webhook maiores recebem 413 (a Meta agrupa até 1.000 eventos, cerca de 3 MB).",
    ),
    "BR_NINTH_DIGIT": SettingDoc(
        "webhook",
        "Add the 9th digit to 12-digit Brazilian mobile numbers in the bot's sender id "
        "(`+556187654321` → `+5561987654321`), as the original project did; replies still go "
        "to the number WhatsApp gave. See docs/migration.md.",
        "Acrescenta o 9º dígito a celulares brasileiros de 12 dígitos no sender id do bot "
        "(`+556187654321` → `+5561987654321`), como o projeto original; as respostas vão "
        "para o número que o WhatsApp informou. Veja docs/migration.pt-BR.md.",
    ),
    # ---- operations ------------------------------------------------------------------------
    "PLAYGROUND": SettingDoc(
        "operations",
        "Serve `/playground`, where you talk to the bot as a contact would.",
        "Serve `/playground`, onde você conversa com o bot como um contato.",
        default_en="`true` in sandbox, else `false`",
        default_pt="`true` no sandbox, senão `false`",
    ),
    "ADMIN_TOKEN": SettingDoc(
        "operations",
        "Required to open the operator views and the playground outside sandbox or from "
        "another machine.",
        "Exigido para abrir as telas de operação e o playground fora do sandbox ou de outra "
        "máquina.",
    ),
    "LOG_FORMAT": SettingDoc(
        "operations",
        "`text`, or `json` for one JSON object per line.",
        "`text`, ou `json` para um objeto JSON por linha.",
    ),
    "LOG_LEVEL": SettingDoc(
        "operations",
        "`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`.",
        "`DEBUG`, `INFO`, `WARNING`, `ERROR` ou `CRITICAL`.",
    ),
    "MASK_CONTACTS": SettingDoc(
        "operations",
        "Show contacts in logs as `55619****4321`.",
        "Mostra os contatos nos logs como `55619****4321`.",
    ),
}
