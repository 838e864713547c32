"""WhatsApp's message limits, in one place, each with where it comes from.

Meta does not say in which unit it counts characters. We count UTF-16 code units (an emoji
outside the Basic Multilingual Plane counts 2), the stricter of the plausible counts, so a
body that passes here is not rejected for its length (DESIGN §8).

Sources (checked November 2026):
- [TEXT]  developers.facebook.com/documentation/business-messaging/whatsapp/messages/text-messages
- [BTN]   …/whatsapp/messages/interactive-reply-buttons-messages
- [LIST]  …/whatsapp/messages/interactive-list-messages
- [LOC]   …/whatsapp/messages/location-request-messages
- [MEDIA] …/whatsapp/messages/image-messages (and video, document)
- [MSG]   …/whatsapp/reference/whatsapp-business-phone-number/message-api
See also shared/reference/meta-cloud-api.md §4, which quotes them.
"""

from __future__ import annotations

TEXT_BODY_MAX = 4096  # [TEXT] text.body

# Interactive messages. The list page now says 4,096 for the body, the Messages reference
# 1,024 (meta-cloud-api.md §4, "Meta pages disagree"): we keep the stricter one for all.
INTERACTIVE_BODY_MAX = 1024  # [BTN] [LIST] [MSG] body.text
HEADER_TEXT_MAX = 60  # [BTN] [LIST] header.text
FOOTER_TEXT_MAX = 60  # [BTN] [LIST] footer.text

REPLY_BUTTONS_MIN = 1  # [BTN]
REPLY_BUTTONS_MAX = 3  # [BTN] "up to three"
REPLY_BUTTON_TITLE_MAX = 20  # [BTN] non-empty, unique within the message
REPLY_BUTTON_ID_MAX = 256  # [BTN] no leading or trailing spaces

LIST_BUTTON_LABEL_MAX = 20  # [LIST] action.button, non-empty
LIST_SECTIONS_MAX = 10  # [LIST] 1-10 sections
LIST_ROWS_MAX = 10  # [LIST] rows across all sections together
LIST_SECTION_TITLE_MAX = 24  # [LIST] required when there is more than one section
LIST_ROW_TITLE_MAX = 24  # [LIST]
LIST_ROW_DESCRIPTION_MAX = 72  # [LIST]
LIST_ROW_ID_MAX = 200  # [LIST]; uniqueness is not stated by Meta, we require it (DESIGN §8)

LOCATION_REQUEST_BODY_MAX = 1024  # [LOC]
MEDIA_CAPTION_MAX = 1024  # [MEDIA] image, video, document; audio and stickers take none
BIZ_OPAQUE_CALLBACK_DATA_MAX = 512  # [MSG]


def utf16_len(text: str) -> int:
    """Length of `text` in UTF-16 code units, the unit every limit here is counted in.

    Lone surrogates (possible in a Python string decoded from JSON) count as one unit each.
    """
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def fits(text: str, limit: int) -> bool:
    """Whether `text` is at most `limit` UTF-16 code units long."""
    # len(text) <= utf16_len(text) <= 2 * len(text): most strings are decided without encoding.
    if len(text) > limit:
        return False
    if 2 * len(text) <= limit:
        return True
    return utf16_len(text) <= limit
