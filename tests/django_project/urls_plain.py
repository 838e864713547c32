"""The plain Django views wired by hand, to test them in the same process as DRF's."""

from django.urls import path

from whatsapp_api_integration.integrations.django.views import HealthView, WebhookView

urlpatterns = [
    path("webhooks/whatsapp/", HealthView.as_view()),
    path("webhooks/whatsapp/webhook", WebhookView.as_view()),
]
