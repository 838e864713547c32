"""The Django app: WhatsApp's webhook served by a Django (or DRF) project.

    INSTALLED_APPS += ["whatsapp_api_integration.integrations.django"]
    urlpatterns += [
        path("webhooks/whatsapp/", include("whatsapp_api_integration.integrations.django.urls")),
    ]

The views reuse the framework-free `web.intake.receive` and the `Gateway`, so the guarantees
are the gateway's: a message is stored before WhatsApp gets its 200, answered once, each
contact's messages in order. Settings come from Django's settings first (the names of
DESIGN.md §3), then the environment; `python manage.py whatsapp_worker` works the jobs.
Nothing outside this package imports Django.
"""
