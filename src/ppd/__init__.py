"""ppd: serve and measure multi-turn LLM conversations on vLLM (PD, PPD, replication, auto)."""

__version__ = "0.1.0"
