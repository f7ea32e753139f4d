"""Test support for evalledger and its plugins.

``evalledger.testing.openai_server`` is a deterministic, fault-injecting
OpenAI-compatible chat-completions server on 127.0.0.1: import ``ReferenceServer`` and
``ServerConfig`` from it, or run it with ``python -m evalledger.testing.openai_server``.
This package does not import the module itself, so that ``python -m`` runs it cleanly.
"""

from __future__ import annotations

__all__: list[str] = []
