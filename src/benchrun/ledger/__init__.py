"""The reproducibility ledger (SQLModel over SQLite or any SQLAlchemy database)."""

from benchrun.ledger.store import Ledger, ledger_url, redact_url

__all__ = ["Ledger", "ledger_url", "redact_url"]
