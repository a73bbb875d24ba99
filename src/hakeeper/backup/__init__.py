"""Backups of a cluster: a manifest plus named objects, optionally encrypted, in a store.

- `manifest`: the typed manifest and its authenticated on-disk envelope;
- `names`: the bounds on object names and backup ids;
- `keys`, `chunks`: the operator's backup key, the per-backup data key, AES-256-GCM chunks;
- `store` (the `BackupStore` protocol), `dir_store`, `s3_store`: where backups live;
- `writer`, `reader`, `verify`: make, read back and check a backup, with progress hooks;
- `retention` (pure decisions) and `catalog` (listing and pruning a store);
- `cluster_state` (what a backup of a cluster holds), `session_seam` (the session stores'
  snapshot and reseed, as protocols), `restore` and `node_map` (back into a cluster, on other
  addresses), `settings` (the ``[backup]`` section made real), `jobs` (one backup, start to
  end), `scheduled` (the controller's job), `health` (what ``check`` says).

docs/dr.md walks through all of it.
"""
