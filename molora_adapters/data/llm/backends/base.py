"""The one small interface every LLM backend implements, and the backend registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from ....registry import Registry

Message = dict[str, str]


@dataclass(frozen=True)
class ChatResponse:
    """One chat completion.

    Args:
        text (`str`): the assistant message.
        prompt_tokens (`int`, *optional*, defaults to 0): tokens billed for the prompt.
        completion_tokens (`int`, *optional*, defaults to 0): tokens billed for the answer.
    """

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class BackendError(RuntimeError):
    """A request failed for good (after all retries). The item is retried on the next run."""


class FatalBackendError(BackendError):
    """A failure no retry can fix (bad API key, unknown model, wrong URL): the run stops."""


class ChatBackend(ABC):
    """A chat-completion LLM.

    Subclasses set :attr:`name` (the registered backend kind) and :attr:`model`; both go into cache
    keys and provenance. :meth:`chat` must be thread-safe: the pipeline calls it from worker threads.
    """

    name: str = "base"
    model: str = ""

    @abstractmethod
    def chat(self, messages: list[Message], *, max_tokens: int, temperature: float) -> ChatResponse:
        """Return the assistant's answer to ``messages``.

        Args:
            messages (`list[dict[str, str]]`): OpenAI-style ``{"role", "content"}`` messages.
            max_tokens (`int`): the answer's token budget.
            temperature (`float`): sampling temperature; 0 means greedy.

        Raises:
            BackendError: when the request failed after all retries.
            FatalBackendError: when no request can succeed (authentication, configuration).
        """

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release resources (connections, model weights)."""


BackendFactory = Callable[..., ChatBackend]

LLM_BACKENDS: Registry[BackendFactory] = Registry("LLM backend")


def register_llm_backend(name: str, factory: BackendFactory | None = None, *, overwrite: bool = False):
    """Register a backend factory ``(**settings) -> ChatBackend`` under ``name`` (usable as a decorator).

    Args:
        name (`str`): lower-case name used by ``molora annotate --backend``.
        factory (`Callable`, *optional*): the factory; omit to use as a decorator.
        overwrite (`bool`, *optional*, defaults to `False`): replace an existing backend of that name.
    """
    return LLM_BACKENDS.register(name, factory, overwrite=overwrite)


def build_backend(name: str, **settings) -> ChatBackend:
    """Instantiate the backend registered as ``name`` with ``settings``."""
    return LLM_BACKENDS.get(name)(**settings)
