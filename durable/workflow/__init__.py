"""Workflows and steps: the decorators, the context and its durable calls, replay."""
