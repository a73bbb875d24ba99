"""Resource agents: run things on one node, with timeouts (layer 5).

An `AgentTable` (``registry``) turns a resource's ``agent`` string and its `AgentContext`
(``factory``) into a `ResourceAgent` (``base``): ``process`` (a command hakeeper supervises),
``ocf:<provider>:<type>`` (OCF 1.1 agents such as Debian's ``resource-agents``, unchanged),
``systemd:<unit>``, ``lsb:<script>``, ``vip``; components above this layer add their own
kinds to the table where they may be named (``hakeeper.cli.plugins``).
Every op answers an `OpResult` whose `Severity` says what recovery it calls for;
`op_events` (``events``) turns it into event-log records. See docs/agents.md.

Import from the modules themselves: this package imports nothing, so that a fence agent
(a fresh process per fence, whose start-up is outage) can use `procfs` and `netns` alone.
"""
