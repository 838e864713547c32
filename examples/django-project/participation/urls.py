from django.urls import include, path

urlpatterns = [
    path("webhooks/whatsapp/", include("whatsapp_api_integration.integrations.django.urls")),
    # Development only: lets `whatsapp-gateway simulate --url ...` show the sandbox's replies.
    path("sandbox/", include("whatsapp_api_integration.integrations.django.sandbox_urls")),
]
