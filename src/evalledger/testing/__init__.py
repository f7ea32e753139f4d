"""Test support: a reference OpenAI-compatible server (``evalledger.testing.openai_server``)."""

__all__: list[str] = []
