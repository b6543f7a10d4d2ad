"""The PostgreSQL store: many runtimes on many machines share one database."""
