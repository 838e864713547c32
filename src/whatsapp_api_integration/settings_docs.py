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
        "must carry `Authorization: Bearer <it>` (or the bare token), or they get 401.",
        "Registrado no SERPRO como `jwtToken` do webhook; quando definido, as chamadas do "
        "SERPRO ao webhook precisam de `Authorization: Bearer <ele>` (ou o token puro), senão "
        "recebem 401.",
    ),
    "SERPRO_WEBHOOK_FORM": SettingDoc(
        "serpro",
        "How `whatsapp-gateway serpro webhook register` registers the webhook: `json` "
        '(`{"uri", "jwtToken"}`, the only form that carries SERPRO_WEBHOOK_TOKEN) or `text` '
        "(the bare URL as `text/plain`, the original project's form).",
        "Como `whatsapp-gateway serpro webhook register` cadastra o webhook: `json` "
        '(`{"uri", "jwtToken"}`, a única forma que leva o SERPRO_WEBHOOK_TOKEN) ou `text` '
        "(a URL pura como `text/plain`, a forma do projeto original).",
    ),
    "SERPRO_MARK_READ_PATH": SettingDoc(
        "serpro",
        "SERPRO's mark-as-read path under `/client/{id}/v2` (sources disagree; the other "
        "one seen is `/requisicao/informacao-de-leitura`).",
        'O caminho de "marcar como lida" do SERPRO em `/client/{id}/v2` (as fontes '
        "divergem; o outro visto é `/requisicao/informacao-de-leitura`).",
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
    "RASA_FAILED_DELIVERY_INTENT": SettingDoc(
        "bot",
        "Intent triggered in the contact's Rasa conversation when WhatsApp reports a reply as "
        "failed (e.g. 131047, outside the 24-hour window), with the error as entities; what "
        "the bot answers is sent to the contact. Needs `RASA_URL` (Rasa with `--enable-api`). "
        "Off when unset. See docs/rasa.md.",
        "Intent disparada na conversa do contato no Rasa quando o WhatsApp informa que uma "
        "resposta falhou (p. ex. 131047, fora da janela de 24 horas), com o erro como "
        "entidades; o que o bot responder é enviado ao contato. Precisa de `RASA_URL` (Rasa com "
        "`--enable-api`). Desligada quando vazia. Veja docs/rasa.pt-BR.md.",
    ),
    "RASA_API_TOKEN": SettingDoc(
        "bot",
        "Rasa's `--auth-token`, sent as `?token=` to Rasa's HTTP API (failed deliveries).",
        "O `--auth-token` do Rasa, enviado como `?token=` à API HTTP do Rasa (entregas que "
        "falharam).",
    ),
    "PROACTIVE_TOKEN": SettingDoc(
        "bot",
        "Bearer token of `POST /webhooks/whatsapp/proactive`, where Rasa's gateway channel "
        "(`GatewayRestInput`) posts what the bot sends on its own (reminders, `trigger_intent`). "
        "The endpoint is off (404) when unset.",
        "Token (bearer) de `POST /webhooks/whatsapp/proactive`, para onde o canal do gateway no "
        "Rasa (`GatewayRestInput`) envia o que o bot manda por conta própria (lembretes, "
        "`trigger_intent`). Sem ele o endpoint fica desligado (404).",
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
        "Jobs in flight (bot calls, sends) of the worker process `serve` starts, and of "
        "`whatsapp-gateway worker`, all on one event loop: a slow bot needs many (a bot taking "
        "0.5 s answers about 2 x WORKERS messages a second). Where jobs run in a web, Rasa or "
        "Django process, that many threads. 0: `serve` works no jobs; run `whatsapp-gateway "
        "worker` beside it.",
        "Jobs em andamento (chamadas ao bot, envios) do processo worker que o `serve` inicia, "
        "e do `whatsapp-gateway worker`, todos num só event loop: um bot lento pede muitos (um "
        "bot que leva 0,5 s responde cerca de 2 x WORKERS mensagens por segundo). Onde os jobs "
        "rodam num processo web, do Rasa ou do Django, esse número de threads. 0: o `serve` "
        "não trabalha; rode `whatsapp-gateway worker` ao lado.",
    ),
    "MAX_ATTEMPTS": SettingDoc(
        "store",
        "Tries of one message before it becomes a dead letter (replayable).",
        "Tentativas de uma mensagem antes de virar carta morta (dead letter, reprocessável).",
    ),
    "JOB_LEASE_SECONDS": SettingDoc(
        "store",
        "How long a job stays with a worker that stopped renewing it (it died) before another "
        "takes it back; live workers renew it every third of it.",
        "Por quanto tempo uma tarefa fica com um worker que parou de renová-la (morreu) antes "
        "que outro a retome; workers vivos a renovam a cada terço desse tempo.",
    ),
    "STORE_FLUSH": SettingDoc(
        "store",
        "Which commits wait until the disk has them: `webhooks` (a stored webhook body, what "
        "the 200 promises, and operator actions), `all`, or `none`. With `webhooks`, a power "
        "cut may undo the workers' last state changes: those jobs run again, so a reply may "
        "go twice, but no message is lost.",
        "Quais commits esperam o disco gravar: `webhooks` (o corpo de webhook armazenado, o "
        "que o 200 promete, e ações de operação), `all` ou `none`. Com `webhooks`, uma queda "
        "de energia pode desfazer as últimas mudanças de estado dos workers: essas tarefas "
        "rodam de novo, então uma resposta pode sair duas vezes, mas nenhuma mensagem se perde.",
    ),
    "SHUTDOWN_GRACE_SECONDS": SettingDoc(
        "store",
        "On SIGTERM, how long jobs in hand may take to finish; the rest go back to the queue "
        "at once, not counted as an attempt.",
        "No SIGTERM, quanto tempo as tarefas em andamento podem levar para terminar; as demais "
        "voltam à fila na hora, sem contar como tentativa.",
    ),
    "DATABASE_POOL_SIZE": SettingDoc(
        "store",
        "Database connections each process keeps.",
        "Conexões com o banco que cada processo mantém.",
        default_en="one per HTTP and worker thread, plus 2",
        default_pt="uma por thread HTTP e de worker, mais 2",
    ),
    "SEND_RATE": SettingDoc(
        "store",
        "Messages per second per sending number, shared by every process (Meta's default "
        "throughput is 80). `0` turns pacing off.",
        "Mensagens por segundo por número remetente, somando todos os processos (a vazão "
        "padrão da Meta é 80). `0` desliga o controle de ritmo.",
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
        "Serve `/playground`, where you talk to the bot as a contact would, and the operator "
        "view `/ops/` (conversations, each message's path, dead letters). See "
        "docs/playground.md.",
        "Serve `/playground`, onde você conversa com o bot como um contato, e a visão do "
        "operador `/ops/` (conversas, o caminho de cada mensagem, cartas mortas). Veja "
        "docs/playground.pt-BR.md.",
        default_en="`true` in sandbox, else `false`",
        default_pt="`true` no sandbox, senão `false`",
    ),
    "ADMIN_TOKEN": SettingDoc(
        "operations",
        "Required to open the operator view and the playground outside sandbox or from "
        "another machine: as `Authorization: Bearer <token>` or on the sign-in form "
        "(`/ops/login`).",
        "Exigido para abrir a visão do operador e o playground fora do sandbox ou de outra "
        "máquina: como `Authorization: Bearer <token>` ou no formulário de entrada "
        "(`/ops/login`).",
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
