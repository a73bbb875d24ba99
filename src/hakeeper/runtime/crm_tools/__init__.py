"""Pacemaker's command-line tools, as resource agents call them, answered by hakeeper.

Agents written for Pacemaker (PAF's ``pgsqlms``, ``ocf:heartbeat:Stateful``) call
``crm_master``, ``crm_attribute``, ``crm_node``, ``crm_resource`` and ``attrd_updater`` from
``$HA_SBIN_DIR``. The node daemon writes small executables of those names into a directory of
its own (`install.tools_dir`, under its state dir; never over ``/usr/sbin``) and gives agents
that directory as ``HA_SBIN_DIR`` (and first on ``PATH``). Each executable parses its options
as Pacemaker's does (`tools`), and asks the local daemon (`service`) over a unix socket in the
state dir, authenticated with the cluster secret (`protocol`); the daemon answers from the
cluster store. ``docs/agents.md`` ("Promotable clones and PAF") lists what each tool answers.
"""
