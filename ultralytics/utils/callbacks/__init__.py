"""Callbacks: named events emitted by trainers, validators, predictors and exporters."""

from .base import add_integration_callbacks, default_callbacks, get_default_callbacks

__all__ = "add_integration_callbacks", "default_callbacks", "get_default_callbacks"
