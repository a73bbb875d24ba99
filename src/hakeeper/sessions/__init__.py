"""The replicated session store: memcached text protocol, majority-acknowledged replication.

Modules: `store` (items, TTLs, LRU by bytes; pure), `wire` (token rules), `protocol` (the
per-connection asyncio.Protocol), `node` (roles, commit, control commands), `entries` (the
replication stream's encoding), `links` (primary → replica streams), `upstream` (replica →
primary forwarding), `server` (running a node), `client` (a small async client).
"""
