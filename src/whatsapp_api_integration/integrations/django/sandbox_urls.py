"""The sandbox's conversation view, for `whatsapp-gateway simulate --url http://host:port`
(which reads `/sandbox/conversations/<contact>`): include it at `sandbox/` in a project
under development. It answers 404 outside sandbox mode.

    path("sandbox/", include("whatsapp_api_integration.integrations.django.sandbox_urls")),
"""

from __future__ import annotations

from django.urls import path

from whatsapp_api_integration.integrations.django.views import SandboxConversationView

app_name = "whatsapp_sandbox"

urlpatterns = [
    path("conversations/<str:contact>", SandboxConversationView.as_view(), name="conversation"),
]
