"""Status store (PostgreSQL / SQLite) and object store (local directory / S3)."""
