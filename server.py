"""The original quick start: `python3 -m flask --app server run -p 5006`.

With no settings at all this runs in sandbox mode: a SQLite store in the current directory
(`whatsapp_gateway.db`), the echo backend, and replies recorded instead of sent. Settings come
from the environment, `.env` and `variables.env` (see `whatsapp-gateway check-config`). For
production, run `whatsapp-gateway serve`.
"""

from whatsapp_api_integration.web.app import create_app

app = create_app()
