"""`package.module:callable`: any Python function answers, sync or `async`."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from whatsapp_api_integration.backends import BackendError, check_responses

if TYPE_CHECKING:
    from whatsapp_api_integration.core.contract import IncomingMessage


class CallableBackend:
    """Calls `function(incoming)`; a coroutine result runs to completion in the calling
    (worker) thread with `asyncio.run`. None means no reply.

    An exception from the function is retried like a bot that is down (it may be a passing
    failure of something the function calls); after MAX_ATTEMPTS it becomes a dead letter
    that names the exception. A function that wants no retry raises
    `BackendError(..., retryable=False)`.
    """

    def __init__(self, function: Callable[..., Any], *, name: str | None = None) -> None:
        self.function = function
        self.name: str = name or str(getattr(function, "__qualname__", repr(function)))

    def answer(self, incoming: IncomingMessage) -> list[dict[str, Any]]:
        try:
            result = self.function(incoming)
            if inspect.isawaitable(result):
                result = asyncio.run(_await(result))
        except BackendError:
            raise
        except Exception as error:
            raise BackendError(
                f"{self.name} raised {type(error).__name__}: {error}", retryable=True
            ) from error
        return check_responses(result, self.name)

    def close(self) -> None:
        return None


async def _await(awaitable: Any) -> Any:
    return await awaitable
