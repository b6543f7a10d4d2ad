"""What runs tell the world outside: telemetry, metrics and tracing."""
