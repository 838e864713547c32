from django.urls import include, path

urlpatterns = [
    path("webhooks/whatsapp/", include("whatsapp_api_integration.integrations.django.urls")),
    path("sandbox/", include("whatsapp_api_integration.integrations.django.sandbox_urls")),
]
