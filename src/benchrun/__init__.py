"""benchrun: private LLM evaluations with a reproducibility ledger."""

__version__ = "0.1.0"
