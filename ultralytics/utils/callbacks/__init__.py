"""Callbacks: named events emitted by trainers, validators, predictors and exporters."""

from .base import add_integration_callbacks, default_callbacks, get_default_callbacks

# The registry (`default_callbacks`), a fresh copy of it per engine part, and the integrations hook.
__all__ = ["add_integration_callbacks", "default_callbacks", "get_default_callbacks"]
