import pytest

pytestmark = pytest.mark.core


def test_package_imports() -> None:
    import whatsapp_api_integration.core.events as events

    assert events.Recipient(wa_id="1").wa_id == "1"
