"""The meta attributes Pacemaker gives a resource's agent, from hakeeper's config.

One source for both the agent's environment (``OCF_RESKEY_CRM_meta_<name>``, names with
``-`` turned into ``_``) and ``crm_resource --meta --get-parameter``.
"""

from __future__ import annotations

from hakeeper.model.cluster import Clone, ClusterSpec

#: The CIB feature set of Pacemaker 2.1.5 (Debian 12), the release hakeeper answers as:
#: agents compare it (PAF wants >= 3.0.9; ocf_promotion_score uses crm_attribute -p
#: from 3.10.0 on).
CRM_FEATURE_SET = "3.16.2"


def clone_of(spec: ClusterSpec, resource: str) -> Clone | None:
    """The clone holding ``resource`` (directly or through its group), if any."""
    groups = {m: g.id for g in spec.groups for m in g.members}
    for clone in spec.clones:
        if clone.child in (resource, groups.get(resource)):
            return clone
    return None


def cluster_properties(spec: ClusterSpec) -> dict[str, str]:
    """The cluster properties (Pacemaker's ``crm_config`` scope) hakeeper's config decides,
    by Pacemaker's names; read-only: the cluster file is where they change."""
    return {
        "cluster-name": spec.options.name,
        "have-watchdog": "true" if spec.watchdog else "false",
        "stonith-enabled": "true" if spec.options.fencing else "false",
        # hakeeper's policies carry Pacemaker's names (stop, freeze, ignore).
        "no-quorum-policy": spec.options.no_quorum_policy,
    }


def resource_meta(spec: ClusterSpec, resource: str) -> dict[str, str]:
    """Pacemaker's meta attributes of primitive ``resource`` (hyphenated names)."""
    primitive = spec.primitive(resource)
    if primitive is None:
        return {}
    meta = {
        "target-role": {"unpromoted": "Unpromoted"}.get(
            primitive.meta.target_role, primitive.meta.target_role.capitalize()
        ),
        "migration-threshold": str(primitive.meta.migration_threshold),
        "priority": str(primitive.meta.priority),
    }
    clone = clone_of(spec, resource)
    if clone is None:
        return meta
    meta.update(
        {
            "clone-max": str(clone.max if clone.max is not None else len(spec.nodes)),
            "clone-node-max": str(clone.max_per_node),
            "globally-unique": "false",
            "notify": "true" if clone.notify else "false",
            "promotable": "true" if clone.promotable else "false",
        }
    )
    if clone.promotable:
        # Both spellings: agents read master_max (PAF) or promoted_max (Pacemaker 2.1).
        for word in ("master", "promoted"):
            meta[f"{word}-max"] = "1"
            meta[f"{word}-node-max"] = "1"
    return meta
