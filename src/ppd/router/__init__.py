"""ppd.router: the routing core, pure (no HTTP, no asyncio), driven by the proxy and by the fleet.

    core.py           Router, RouterConfig: decide / begin / first_byte / finish / commit / learn
    policies.py       each mode's rule: Turn, Candidates, Route, choose_route
    auto.py           auto mode's cost model          estimates.py   its running fits
    failover.py       classify(failure, hop) and the routes after a failure
    conversations.py  who holds what                  history.py     recognising a conversation
    instances.py      instances: roles, health, load  records.py     TurnRecord, one turn's story
    holding.py        whether a holder still had the history (the held share auto expects)

Modes, roles and route kinds are typed in ppd.modes.
"""

from ppd.router.core import InFlight, ModeUnavailable, Router, RouterConfig
from ppd.router.records import TurnRecord

__all__ = ["InFlight", "ModeUnavailable", "Router", "RouterConfig", "TurnRecord"]
