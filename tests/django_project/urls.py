from django.urls import include, path

urlpatterns = [
    path("webhooks/whatsapp/", include("whatsapp_api_integration.integrations.django.urls")),
]
