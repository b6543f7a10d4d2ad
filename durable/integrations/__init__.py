"""Integrations of durable with agent frameworks (each an extra: ``durable[openai-agents]``)."""
