"""Backups of a cluster: a manifest plus named objects, optionally encrypted, in a store.

- `manifest`: the typed manifest and its authenticated on-disk envelope;
- `names`: the bounds on object names and backup ids;
- `keys`, `chunks`: the operator's backup key, the per-backup data key, AES-256-GCM chunks;
- `store` (the `BackupStore` protocol), `dir_store`, `s3_store`: where backups live;
- `writer`, `reader`, `verify`: make, read back and check a backup, with progress hooks;
- `retention` (pure decisions) and `catalog` (listing and pruning a store).

Collecting the cluster's state and restoring it are not here yet (docs/dr.md says what is).
"""
