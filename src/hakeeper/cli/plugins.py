"""The plug-in tables of the whole program, assembled at the top, where every layer may be named.

Resource agents of layer 5 come from `hakeeper.agents.registry.BUILTIN_AGENTS`; components of
layer 7 that run as cluster resources (the balancer, the session store) are added here, so no
lower layer ever names them. The daemon gets `RESOURCE_AGENTS` by injection.
"""

from __future__ import annotations

from hakeeper.agents.registry import BUILTIN_AGENTS, AgentScheme

RESOURCE_AGENTS = BUILTIN_AGENTS.plus(
    AgentScheme("balancer", "hakeeper.balancer.agent:BalancerAgent"),
    AgentScheme("sessions", "hakeeper.sessions.agent:SessionsAgent"),
)
