"""ppd: serve and measure multi-turn LLM conversations on vLLM (PD, PPD, replication, auto)."""

from ppd.buildinfo import check_build

__version__ = "0.1.0"

check_build()  # an opt-in compiled build (tools/build_compiled.py) must match its sources
