#!/usr/bin/env bash
# Create a venv with the REAL Rasa Open Source 3.6.21 channel layer + rasa_sdk 3.6.2
# on Python 3.11 (Rasa 3.6 declares python_requires <3.11), without TensorFlow.
#
#   setup-channels.sh VENV_DIR [extra pip args...]
#
# Extra args are installed in the same pip call under Rasa's own pins
# (rasa36-constraints.txt next to this script), e.g. your package:
#   setup-channels.sh .venv-rasa -e .          # fails if your deps move Rasa's pins
# Env: PYTHON (default python3.11, else python3).
# Needs: PyPI via pip, gcc + Python headers (multidict 5.2.0, required by sanic
# 21.12, has no cp311 wheel and is compiled from source, ~7 s).
set -euo pipefail

VENV="${1:?usage: setup-channels.sh VENV_DIR [extra pip args...]}"
shift
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONSTRAINTS="$HERE/rasa36-constraints.txt"
[ -f "$CONSTRAINTS" ] || { echo "missing $CONSTRAINTS" >&2; exit 2; }
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"

RASA_VERSION=3.6.21
RASA_SDK_VERSION=3.6.2

"$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
LOG="$VENV/setup-channels.log"
# pip's output goes to $LOG: it always ends with a long, EXPECTED list of
# "rasa 3.6.21 requires <tensorflow, ...>, which is not installed" lines.
pipq() { "${PIP[@]}" "$@" >>"$LOG" 2>&1 || { tail -n 40 "$LOG" >&2; echo "pip failed, see $LOG" >&2; exit 1; }; }

# 1) rasa + rasa-sdk themselves, without their (TensorFlow-heavy) dependency tree.
pipq install --no-deps --ignore-requires-python \
    "rasa==$RASA_VERSION" "rasa-sdk==$RASA_SDK_VERSION"

# 2) exactly what `import rasa.core.channels` (all built-in connectors, RestInput,
#    socketio, ...) and rasa_sdk (incl. its action server) import, at Rasa's pins.
#    Found by importing and fixing ImportErrors one by one.
pipq install -c "$CONSTRAINTS" \
    pluggy 'PyJWT[crypto]' sanic sanic-routing sanic-cors websockets \
    randomname portalocker ruamel.yaml jsonschema packaging pykwalify structlog \
    jsonpickle numpy scipy requests terminaltables tarsafe typing-extensions \
    python-socketio python-engineio aiohttp questionary prompt-toolkit \
    fbmessenger slack-sdk aiogram twilio webexteamssdk google-auth CacheControl \
    coloredlogs python-dateutil pytz setuptools wheel \
    "$@"

PYTHONWARNINGS=ignore "$VENV/bin/python" - <<'EOF'
import rasa, rasa_sdk, sanic
from rasa.core.channels.channel import (InputChannel, OutputChannel, UserMessage,
                                        CollectingOutputChannel, register)
from rasa.core.channels.rest import RestInput
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
import rasa_sdk.endpoint
print(f"ok: rasa {rasa.__version__}, rasa_sdk {rasa_sdk.__version__}, sanic {sanic.__version__}")
EOF

# (The recipe's SMOKE=1 check, smoke_channel.py, is not copied here: tests/test_rasa_channel.py
# exercises the same classes.)
