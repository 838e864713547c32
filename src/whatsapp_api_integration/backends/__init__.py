"""Answer backends: what turns an incoming message into bot responses (DESIGN.md §7).

A backend gets an `IncomingMessage` and returns Rasa-shaped responses (`[{"text": ...}, ...]`).
`BackendError.retryable` tells the pipeline whether asking again later can help (the bot is
down) or not (the bot answered something that is not a list of responses).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from whatsapp_api_integration.core.contract import IncomingMessage


class Backend(Protocol):
    def answer(self, incoming: IncomingMessage) -> list[dict[str, Any]]: ...


class BackendError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def check_responses(answer: Any, origin: str) -> list[dict[str, Any]]:
    """The answer as a list of response objects, or a non-retryable BackendError."""
    if answer is None:
        return []
    if not isinstance(answer, list):
        raise BackendError(
            f"{origin} answered {type(answer).__name__}, expected a list of response objects",
            retryable=False,
        )
    for index, response in enumerate(answer):
        if not isinstance(response, dict):
            raise BackendError(
                f"{origin} answered a list whose item {index} is {type(response).__name__},"
                ' expected an object like {"text": ...}',
                retryable=False,
            )
    return cast("list[dict[str, Any]]", answer)


def load_backend(spec: str, *, rasa_url: str | None, timeout: float) -> Backend:
    """The backend named by ANSWER_BACKEND: `rasa`, `echo` or `package.module:callable`."""
    spec = spec.strip()
    if spec == "rasa":
        if not rasa_url:
            raise ValueError("ANSWER_BACKEND=rasa needs RASA_URL (e.g. http://localhost:5005)")
        from whatsapp_api_integration.backends.rasa import RasaBackend

        return RasaBackend(rasa_url, timeout=timeout)
    if spec == "echo":
        from whatsapp_api_integration.backends.echo import EchoBackend

        return EchoBackend()
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise ValueError(
            f"ANSWER_BACKEND={spec!r}: expected 'rasa', 'echo' or 'package.module:callable'"
        )
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(
            f"ANSWER_BACKEND={spec!r}: cannot import {module_name!r}: {error}"
        ) from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(
                f"ANSWER_BACKEND={spec!r}: {module_name!r} has no attribute {attribute!r}"
            ) from None
    from whatsapp_api_integration.backends.callable_backend import CallableBackend

    answer = getattr(target, "answer", None)
    if callable(answer) and not isinstance(target, type):
        return CallableBackend(cast("Callable[..., Any]", answer), name=spec)
    if not callable(target):
        raise ValueError(f"ANSWER_BACKEND={spec!r}: {attribute!r} is not callable")
    return CallableBackend(cast("Callable[..., Any]", target), name=spec)


__all__ = ["Backend", "BackendError", "check_responses", "load_backend"]
