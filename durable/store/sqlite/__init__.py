"""The SQLite store: one file, one writer with group commit, an aiosqlite reader."""
