"""whatsapp-api-integration: a durable gateway between WhatsApp and a chatbot."""

__version__ = "0.1.0"
