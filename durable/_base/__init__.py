"""Helpers that import nothing of ours: time, JSON, ids, numbers, asyncio."""
