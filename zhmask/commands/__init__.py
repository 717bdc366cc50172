"""CLI commands that live in their own modules (registered on import by zhmask.cli)."""
