"""From a URI to an object store: ``s3://bucket/prefix``, ``file:///abs/path`` or a plain path.

Configuration names where a run keeps its objects by URI, and events carry URIs of objects
(the policy topic announces ``s3://bucket/run-1/step-000000200/``). ``open_object_store``
turns a location into a store; ``resolve`` turns the URI of one object (or of a "directory"
ending with ``/``) into a store and the key inside it, with ``store.uri(key) == uri``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from hybridrl.config.object_store import ObjectStoreSettings
from hybridrl.store.local_object_store import LocalObjectStore
from hybridrl.store.object_store import ObjectStore
from hybridrl.store.retry import RetryPolicy
from hybridrl.store.s3_object_store import S3ObjectStore

_S3 = "s3://"
_FILE = "file://"


def open_object_store(
    uri: str,
    settings: ObjectStoreSettings | None = None,
    *,
    retry: RetryPolicy | None = None,
) -> ObjectStore:
    """The store at ``uri``: keys of the returned store are relative to the URI's path.

    ``s3://bucket/prefix`` needs ``settings`` (endpoint, credentials); the URI's bucket
    overrides ``settings.bucket``. ``file:///abs/path`` and plain paths need nothing; a
    relative plain path is taken from the current directory.
    """
    if uri.startswith(_S3):
        bucket, prefix = _split_s3(uri)
        return _s3_store(uri, bucket, prefix, settings, retry)
    return LocalObjectStore(_local_path(uri))


def resolve(
    uri: str,
    settings: ObjectStoreSettings | None = None,
    *,
    retry: RetryPolicy | None = None,
) -> tuple[ObjectStore, str]:
    """The store holding the object at ``uri`` and its key there.

    For S3 the store is the whole bucket and the key is the URI's path; for a local path the
    store is the parent directory and the key the last name. A URI ending with ``/`` names a
    "directory" and gives a key ending with ``/``. Each call builds a new store (for S3 a new
    client): keep the store when reading many objects.
    """
    if uri.startswith(_S3):
        bucket, key = _split_s3(uri)
        if not key:
            raise ValueError(f"{uri!r} names a bucket, not an object or a directory in it")
        return _s3_store(uri, bucket, "", settings, retry), key
    path = _local_path(uri)
    if path.parent == path:
        raise ValueError(f"{uri!r} names the file system root, not an object or a directory")
    directory_marker = "/" if uri.endswith("/") else ""
    return LocalObjectStore(path.parent), path.name + directory_marker


def _split_s3(uri: str) -> tuple[str, str]:
    # Split by hand: S3 keys may hold '?' or '#', which a URL parser would cut off.
    bucket, _, key = uri.removeprefix(_S3).partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} has no bucket name (expected s3://bucket/...)")
    return bucket, key


def _s3_store(
    uri: str,
    bucket: str,
    prefix: str,
    settings: ObjectStoreSettings | None,
    retry: RetryPolicy | None,
) -> S3ObjectStore:
    if settings is None:
        raise ValueError(f"{uri!r} is an S3 URI: ObjectStoreSettings (endpoint, keys) are needed")
    # The URI's bucket is checked by the same rules as the settings' bucket.
    settings = ObjectStoreSettings.model_validate({**settings.model_dump(), "bucket": bucket})
    return S3ObjectStore.from_settings(settings, prefix=prefix.strip("/"), retry=retry)


def _local_path(uri: str) -> Path:
    if uri.startswith(_FILE):
        rest = uri.removeprefix(_FILE)
        host, slash, path = rest.partition("/")
        if host not in ("", "localhost") or not slash:
            raise ValueError(f"{uri!r}: only local file URIs (file:///absolute/path) are supported")
        return Path("/" + unquote(path))
    if "://" in uri:
        raise ValueError(f"{uri!r}: unsupported scheme; use s3://, file:// or a plain path")
    if not uri:
        raise ValueError("an object store location must not be empty")
    return Path(uri).absolute()
