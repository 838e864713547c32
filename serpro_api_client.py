"""The original project's `from serpro_api_client import register_webhook`, from the repository's
root (beside server.py): `python3 -c "from serpro_api_client import register_webhook;
print(register_webhook())"` registers RASA_WEBHOOK_URL at SERPRO. See docs/serpro.md."""

from whatsapp_api_integration.serpro_api_client import *  # noqa: F403
from whatsapp_api_integration.serpro_api_client import __all__ as __all__
