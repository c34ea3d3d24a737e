"""What-if of the results README ("Fourth session"), not the model: the fleet engine holds its step
loop K_US microseconds per prompt token of each request it takes in (the engine core's work on an
arrival: block hashes, prefix lookup, allocation). A `ppd fleet` command line for fleet/run.sh:

    K_US=2 FLEET="python results/h200-vllm0.25.1-single/session4/whatif/intake_hold.py" PYTHON=python \
        results/h200-vllm0.25.1-single/fleet/run.sh /tmp/intake2
"""

import os
import sys

from ppd.cli import main
from ppd.fleet.engines import VirtualEngine
from ppd.sim.request import Request

K_US = float(os.environ["K_US"])
_submit = VirtualEngine.submit


def submit(self: VirtualEngine, request: Request) -> None:
    self.occupy(K_US * 1e-6 * request.num_prompt_tokens, lambda: None)
    _submit(self, request)


VirtualEngine.submit = submit  # type: ignore[method-assign]
sys.exit(main(["fleet", *sys.argv[1:]]))
