"""Agent frameworks made durable: each module is one framework's integration, built on the
framework's own extension points and on ``durable``'s public API only.

- ``durable.integrations.pydantic_ai``: ``Durability``, a pydantic-ai capability
  (extra ``durable-workflows[pydantic-ai]``).
- ``durable.integrations.openai_agents``: ``DurableRunner``, the OpenAI Agents SDK's
  runner made durable (extra ``durable-workflows[openai-agents]``).
"""
