"""A backup store in S3-compatible object storage, through boto3 (the optional ``s3`` extra).

Keys under the configured prefix::

    <prefix><id>/objects/<name>      the objects, each one PUT (or one multipart upload)
    <prefix><id>/MANIFEST            written last: its presence makes the backup complete

A single PUT and a completed multipart upload are atomic in S3, and an unfinished multipart
upload is never listed, so a backup is listed only once its manifest exists; removal takes
the manifest first. Objects stream in parts of ``part_size`` bytes: memory stays bounded by
one part whatever the object's size.

Every request has a connect and a read timeout, and boto3 retries a bounded number of times.
Credentials come from a 0600 file or from the environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``) and nowhere else: no instance-metadata
look-up on a machine where nothing asked for one. They are never logged, shown or raised.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from hakeeper.backup.errors import BackupNotFound, MissingObject, StoreUnavailable
from hakeeper.backup.manifest import MAX_MANIFEST_BYTES
from hakeeper.backup.names import check_backup_id, check_object_name, is_backup_id
from hakeeper.config.secret_file import read_private_file
from hakeeper.errors import ConfigError

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's smallest part but the last
READ_CHUNK = 1024 * 1024
MAX_LISTED_KEYS = 1_000_000
_DELETE_BATCH = 1000  # S3's limit per DeleteObjects request
_MISSING = ("NoSuchKey", "404", "NotFound")
_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class S3Credentials:
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


def read_credentials_file(path: Path) -> S3Credentials:
    """``access_key_id = …``, ``secret_access_key = …`` (and optionally
    ``session_token = …``) lines from a 0600 file; ``#`` starts a comment line."""
    data = read_private_file(
        path, 16 * 1024, missing=f"{path}: no S3 credentials file there (create it, mode 0600)"
    )
    values: dict[str, str] = {}
    for number, raw in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or key.strip() not in ("access_key_id", "secret_access_key", "session_token"):
            raise ConfigError(
                f"{path}: line {number} is not 'access_key_id = …', 'secret_access_key = …' "
                "or 'session_token = …'"
            )
        values[key.strip()] = value.strip()
    return _credentials(values, str(path), "access_key_id", "secret_access_key", "session_token")


def credentials_from_environment(environ: Mapping[str, str]) -> S3Credentials:
    return _credentials(
        environ,
        "the environment",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    )


def _credentials(
    values: Mapping[str, str], source: str, key_id: str, secret: str, token: str
) -> S3Credentials:
    if not values.get(key_id) or not values.get(secret):
        raise ConfigError(
            f"S3 credentials: {source} lacks {key_id} or {secret} (give a credentials file "
            "of mode 0600, or set both in the environment)"
        )
    return S3Credentials(values[key_id], values[secret], values.get(token) or None)


@dataclass(frozen=True, slots=True)
class S3Settings:
    """Where and how to reach the bucket."""

    bucket: str
    prefix: str = "hakeeper/"
    endpoint_url: str | None = None
    region: str = "us-east-1"
    credentials_file: Path | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 3
    part_size: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", self.bucket):
            raise ConfigError(f"S3 bucket {self.bucket[:64]!a} is not a valid bucket name")
        if self.prefix and (
            not self.prefix.endswith("/")
            or self.prefix.startswith("/")
            or not re.fullmatch(r"[A-Za-z0-9._/-]{1,200}", self.prefix)
        ):
            raise ConfigError(
                f"S3 prefix {self.prefix[:64]!a}: letters, digits and . _ - / only, ending "
                "with '/' (or empty)"
            )
        if self.endpoint_url is not None and not re.fullmatch(
            r"https?://[A-Za-z0-9.\[\]:_-]+(/[\x21-\x7e]*)?", self.endpoint_url
        ):
            raise ConfigError(
                f"S3 endpoint {self.endpoint_url[:80]!a}: give an http:// or https:// URL"
            )
        if not (0 < self.connect_timeout <= 300 and 0 < self.read_timeout <= 600):
            raise ConfigError("S3 timeouts: connect in (0, 300] s, read in (0, 600] s")
        if not 1 <= self.max_attempts <= 10:
            raise ConfigError("S3 max_attempts: from 1 to 10")
        if not MIN_PART_SIZE <= self.part_size <= 512 * 1024 * 1024:
            raise ConfigError(f"S3 part_size: from {MIN_PART_SIZE} bytes to 512 MiB")


class _S3Client(Protocol):
    """The part of boto3's S3 client this store calls (boto3 itself is untyped)."""

    def put_object(self, **kwargs: Any) -> dict[str, Any]: ...
    def get_object(self, **kwargs: Any) -> dict[str, Any]: ...
    def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]: ...
    def delete_objects(self, **kwargs: Any) -> dict[str, Any]: ...
    def delete_object(self, **kwargs: Any) -> dict[str, Any]: ...
    def head_object(self, **kwargs: Any) -> dict[str, Any]: ...
    def create_multipart_upload(self, **kwargs: Any) -> dict[str, Any]: ...
    def upload_part(self, **kwargs: Any) -> dict[str, Any]: ...
    def complete_multipart_upload(self, **kwargs: Any) -> dict[str, Any]: ...
    def abort_multipart_upload(self, **kwargs: Any) -> dict[str, Any]: ...


def _make_client(
    settings: S3Settings, credentials: S3Credentials
) -> tuple[_S3Client, tuple[type[Exception], ...]]:
    """A boto3 client for ``settings`` and the exceptions its requests raise."""
    try:
        import boto3  # (optional: only this store needs it)
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise ConfigError(
            "the S3 backup store needs boto3, which is not installed: "
            "pip install 'hakeeper[s3]' (or use a backup directory)"
        ) from None
    config = Config(
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        retries={"max_attempts": settings.max_attempts, "mode": "standard"},
        s3={"addressing_style": "path"} if settings.endpoint_url else None,
    )
    session = boto3.session.Session(
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
        region_name=settings.region,
    )
    client = session.client("s3", endpoint_url=settings.endpoint_url, config=config)
    return cast(_S3Client, client), (BotoCoreError, ClientError)


class _NoSuchKey(Exception):
    """A request named a key the bucket does not hold; the caller says what is missing."""


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


class S3Upload:
    """A backup being written under ``<prefix><id>/``; listed only after `commit`."""

    def __init__(self, store: S3Store, backup_id: str) -> None:
        self._store = store
        self._id = backup_id

    @property
    def backup_id(self) -> str:
        return self._id

    async def write_object(self, name: str, chunks: AsyncIterator[bytes]) -> int:
        key = self._store.object_key(self._id, check_object_name(name))
        part_size = self._store.settings.part_size
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        written = 0
        try:
            async for chunk in chunks:
                buffer += chunk
                while len(buffer) >= part_size:
                    if upload_id is None:
                        upload_id = await self._store.begin_multipart(key)
                    part = bytes(buffer[:part_size])
                    del buffer[:part_size]
                    parts.append(await self._store.upload_part(key, upload_id, len(parts), part))
                    written += len(part)
            if upload_id is None:
                await self._store.call(self._store.client.put_object, Key=key, Body=bytes(buffer))
            else:
                if buffer:
                    parts.append(
                        await self._store.upload_part(key, upload_id, len(parts), bytes(buffer))
                    )
                await self._store.call(
                    self._store.client.complete_multipart_upload,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            if upload_id is not None:
                await self._store.abort_multipart(key, upload_id)
            raise
        return written + len(buffer)

    async def commit(self, manifest: bytes) -> None:
        await self._store.call(
            self._store.client.put_object, Key=self._store.manifest_key(self._id), Body=manifest
        )

    async def abort(self) -> None:
        await self._store.delete_keys(
            await self._store.keys_under(self._store.backup_prefix(self._id))
        )


class S3Store:
    """Backups in one bucket under one prefix. Making one loads boto3's service model
    (about half a second of CPU): make it before the event loop runs, or in a thread."""

    def __init__(
        self,
        settings: S3Settings,
        credentials: S3Credentials | None = None,
        *,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        if credentials is None:
            credentials = (
                read_credentials_file(settings.credentials_file)
                if settings.credentials_file is not None
                else credentials_from_environment(environ)
            )
        self.settings = settings
        self.client, self._errors = _make_client(settings, credentials)

    @property
    def description(self) -> str:
        where = f" at {self.settings.endpoint_url}" if self.settings.endpoint_url else ""
        return f"s3://{self.settings.bucket}/{self.settings.prefix}{where}"

    def backup_prefix(self, backup_id: str) -> str:
        return f"{self.settings.prefix}{backup_id}/"

    def object_key(self, backup_id: str, name: str) -> str:
        return f"{self.backup_prefix(backup_id)}objects/{name}"

    def manifest_key(self, backup_id: str) -> str:
        return f"{self.backup_prefix(backup_id)}MANIFEST"

    async def call(self, method: Callable[..., dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        """One request in a worker thread; a failure told as `StoreUnavailable`, a missing
        key as `_NoSuchKey` (for the caller to name what is missing)."""
        try:
            return await asyncio.to_thread(method, Bucket=self.settings.bucket, **kwargs)
        except self._errors as exc:
            if _error_code(exc) in _MISSING:
                raise _NoSuchKey(kwargs.get("Key")) from exc
            raise StoreUnavailable(
                f"{self.description}: {type(exc).__name__}: {_error_code(exc) or exc} (check "
                "the endpoint, the bucket, the credentials and the network)"
            ) from exc

    async def _get(self, key: str, missing: Callable[[], Exception]) -> Any:
        try:
            return (await self.call(self.client.get_object, Key=key))["Body"]
        except _NoSuchKey:
            raise missing() from None

    async def _require_complete(self, backup_id: str) -> None:
        try:
            await self.call(self.client.head_object, Key=self.manifest_key(backup_id))
        except _NoSuchKey:
            raise self._not_found(backup_id) from None

    async def begin_multipart(self, key: str) -> str:
        return str((await self.call(self.client.create_multipart_upload, Key=key))["UploadId"])

    async def upload_part(
        self, key: str, upload_id: str, index: int, data: bytes
    ) -> dict[str, Any]:
        number = index + 1
        answer = await self.call(
            self.client.upload_part, Key=key, UploadId=upload_id, PartNumber=number, Body=data
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        await asyncio.shield(
            self.call(self.client.abort_multipart_upload, Key=key, UploadId=upload_id)
        )

    async def keys_under(self, prefix: str) -> list[str]:
        keys: list[str] = []
        token: str | None = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = await self.call(self.client.list_objects_v2, Prefix=prefix, **extra)
            keys.extend(str(item["Key"]) for item in page.get("Contents", []))
            if len(keys) > MAX_LISTED_KEYS:
                raise StoreUnavailable(
                    f"{self.description}: more than {MAX_LISTED_KEYS} keys under {prefix}; "
                    "prune, or give this store a prefix of its own"
                )
            if not page.get("IsTruncated"):
                return keys
            token = str(page["NextContinuationToken"])

    async def delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            await self.call(
                self.client.delete_objects,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )

    async def _ids(self) -> tuple[set[str], set[str]]:
        """(complete ids, ids with objects but no manifest)."""
        complete: set[str] = set()
        seen: set[str] = set()
        for key in await self.keys_under(self.settings.prefix):
            backup_id, _, rest = key.removeprefix(self.settings.prefix).partition("/")
            if not is_backup_id(backup_id):
                continue
            seen.add(backup_id)
            if rest == "MANIFEST":
                complete.add(backup_id)
        return complete, seen - complete

    async def begin(self, backup_id: str) -> S3Upload:
        return S3Upload(self, check_backup_id(backup_id))

    async def backup_ids(self) -> tuple[str, ...]:
        return tuple((await self._ids())[0])

    async def in_progress(self) -> tuple[str, ...]:
        return tuple((await self._ids())[1])

    def _not_found(self, backup_id: str) -> BackupNotFound:
        return BackupNotFound(
            f"no complete backup {backup_id} in {self.description} (`hakeeper backup list` "
            "shows those there are)"
        )

    async def read_manifest(self, backup_id: str) -> bytes:
        key = self.manifest_key(check_backup_id(backup_id))
        body = await self._get(key, lambda: self._not_found(backup_id))
        try:
            return cast(bytes, await asyncio.to_thread(body.read, MAX_MANIFEST_BYTES + 1))
        except self._errors as exc:
            raise StoreUnavailable(f"{self.description}: reading {key} failed: {exc}") from exc
        finally:
            body.close()

    async def read_object(self, backup_id: str, name: str) -> AsyncIterator[bytes]:
        await self._require_complete(check_backup_id(backup_id))
        key = self.object_key(backup_id, check_object_name(name))
        body = await self._get(
            key,
            lambda: MissingObject(
                f"backup {backup_id}: object {name!r} is missing from {self.description} "
                "(the backup is incomplete; use another one)"
            ),
        )
        try:
            while True:
                try:
                    chunk = cast(bytes, await asyncio.to_thread(body.read, READ_CHUNK))
                except self._errors as exc:
                    raise StoreUnavailable(
                        f"{self.description}: reading {key} failed: {exc}"
                    ) from exc
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    async def delete(self, backup_id: str) -> None:
        prefix = self.backup_prefix(check_backup_id(backup_id))
        await self._require_complete(backup_id)
        await self.call(self.client.delete_object, Key=self.manifest_key(backup_id))
        await self.delete_keys(await self.keys_under(prefix))
