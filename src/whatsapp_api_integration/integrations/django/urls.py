"""The app's routes, mounted where the project includes them (DESIGN.md §4):

    path("webhooks/whatsapp/", include("whatsapp_api_integration.integrations.django.urls"))

serves `GET /webhooks/whatsapp/` (health) and `GET|POST /webhooks/whatsapp/webhook` (Meta's
handshake and the webhook; a trailing slash is accepted too, so either form of the callback
URL registered at Meta works). DRF's views when DRF can be imported, plain Django's otherwise.
"""

from __future__ import annotations

from django.urls import path, re_path
from django.views import View

from whatsapp_api_integration.integrations.django import views

app_name = "whatsapp"


def view_classes() -> tuple[type[View], type[View]]:
    """(health view, webhook view): DRF's when `rest_framework` imports, else plain Django's."""
    try:
        from whatsapp_api_integration.integrations.django import drf
    except ImportError as error:
        if not (error.name or "").startswith("rest_framework"):
            raise
        return views.HealthView, views.WebhookView
    return drf.HealthAPIView, drf.WebhookAPIView


health_view, webhook_view = view_classes()

urlpatterns = [
    path("", health_view.as_view(), name="health"),
    re_path(r"^webhook/?$", webhook_view.as_view(), name="webhook"),
]
