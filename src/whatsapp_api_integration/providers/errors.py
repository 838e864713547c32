"""Which provider errors are worth trying again (DESIGN.md §10).

Meta asks to decide on the error `code`, never on the HTTP status alone: the same 400 carries
"parameter invalid" (never succeeds) and the same 500 may carry a policy code. The HTTP status
decides only when the answer carries no code we know.
"""

from __future__ import annotations

# Temporary or throttling: the same request can succeed later.
RETRYABLE_CODES = frozenset(
    {
        1,  # invalid request or possible server error (retried a few times only)
        2,  # temporary downtime or overload
        4,  # app call rate limit
        80007,  # WABA rate limit
        130429,  # Cloud API throughput reached
        131000,  # unknown error ("try again")
        131016,  # service temporarily unavailable
        131056,  # pair rate limit: this recipient only
        131057,  # account in maintenance mode (throughput upgrade)
        133004,  # server temporarily unavailable
    }
)

# Payload, permission and policy errors: repeating the request cannot help.
NON_RETRYABLE_CODES = frozenset(
    {
        0,  # unable to authenticate (token expired)
        3,  # capability or permission
        10,  # permission not granted
        100,  # invalid parameter
        190,  # access token expired
        368,  # WABA restricted for policy violation
        130403,  # the business blocked this user
        130472,  # marketing experiment
        130497,  # WABA restricted from this country
        131005,  # permission not granted
        131008,  # required parameter missing
        131009,  # parameter value invalid
        131021,  # sender is the recipient
        131026,  # undeliverable
        131031,  # account locked
        131037,  # display name not approved
        131042,  # payment problem
        131045,  # number registration error
        131047,  # outside the 24-hour window: needs a template
        131048,  # spam rate limit
        131049,  # per-user marketing limit
        131050,  # user stopped marketing messages
        131051,  # unsupported message type
        131053,  # media upload error
        131062,  # this message cannot go to a business-scoped user id
        131063,  # marketing templates disabled
        131064,  # messaging limit for misclassified templates
        133010,  # phone number not registered
        135000,  # unknown error with request parameters
    }
)


def _is_template_error(code: int) -> bool:
    return 132000 <= code <= 132999


def _is_permission_error(code: int) -> bool:
    return 200 <= code <= 299


def classify(code: int | None, http_status: int | None) -> bool:
    """True when the failed request may succeed if sent again later.

    `http_status` None means no answer at all (timeout, connection error): retryable.
    """
    if code is not None:
        if code in RETRYABLE_CODES:
            return True
        if code in NON_RETRYABLE_CODES or _is_template_error(code) or _is_permission_error(code):
            return False
    if http_status is None:
        return True
    return http_status in (408, 429) or http_status >= 500
