"""Prediction backends by name (a model config's `backend:`).

The built-in ones are registered as "module:Class" strings and imported on first use, so importing
this registry never pulls in torch, vLLM, llama.cpp or the OpenAI client. A new backend is one
module with a class following `tunebench.backends.base.Backend`, registered here (or, from a
plugin or a test, with `register_backend`), plus its name in the model schema's `backend` enum.
"""

from __future__ import annotations

import importlib

from tunebench.backends.base import (
    Backend,
    BackendBase,
    BackendContext,
    Conversation,
    Generation,
    Scored,
    check_lengths,
    render_messages,
)
from tunebench.core.errors import ConfigError

__all__ = ["Backend", "BackendBase", "BackendContext", "Conversation", "Generation", "Scored", "backend_for",
           "backend_names", "check_lengths", "register_backend", "render_messages"]

_REGISTRY: dict[str, type[Backend] | str] = {
    "transformers": "tunebench.backends.transformers_backend:TransformersBackend",
    "llamacpp": "tunebench.backends.llamacpp_backend:LlamaCppBackend",
    "vllm": "tunebench.backends.vllm_backend:VLLMBackend",
    "openai": "tunebench.backends.openai_backend:OpenAIBackend",
    "classic": "tunebench.backends.classic_backend:ClassicBackend",  # built in: no model file names it
}


def register_backend(name: str, backend: type[Backend] | str) -> None:
    """Make `backend` (a class, or "module:Class" to import on first use) the backend called `name`;
    a later registration under the same name replaces the earlier one."""
    _REGISTRY[name] = backend


def backend_names() -> list[str]:
    return list(_REGISTRY)


def backend_for(name: str) -> type[Backend]:
    """The backend class called `name`, imported now if it was registered by path."""
    try:
        entry = _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown backend {name!r}", field="backend",
                          fix=f"use one of: {', '.join(_REGISTRY)}") from None
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module), attr)
        _REGISTRY[name] = entry
    return entry
