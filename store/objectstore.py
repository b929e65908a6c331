"""Object-store homes: ``--home s3://bucket/prefix`` (S3, MinIO, any S3-compatible server).

Where the store is and who we are come from the standard AWS environment variables, read when a
home is first opened in a process: ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (MinIO, a
local server; ``http://`` allowed), ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` /
``AWS_SESSION_TOKEN`` (or botocore's other sources: ``AWS_PROFILE``, the shared credentials
file, an assumed role, SSO, an instance or container role), ``AWS_REGION`` /
``AWS_DEFAULT_REGION`` (default ``us-east-1``).

Temporary credentials (STS: an assumed role, SSO, an instance role) expire, often within the
hour, while a million-item embed runs longer. The home keeps botocore's credentials object, which
renews such credentials shortly before they expire, and asks it for the current keys at each use
(`S3Home.keys`): the botocore client signs every request with them, the pyarrow file system
is made again when they changed (`S3Home.fs`), and so is a `store.vectors.VectorStore`'s LanceDB
connection. Keys given as plain environment variables are fixed: they are used as they are.

Three clients see the same home with the same settings: pyarrow's ``S3FileSystem`` (Parquet
tables, Arrow datasets for `atelier sql`), LanceDB's object store (`storage_options`) and
botocore for the small objects that need conditional requests (lake pointers and locks:
``If-None-Match: *`` creates an object only if it does not exist, ``If-Match: <etag>`` replaces
or deletes it only if nobody changed it; pyarrow cannot send either header).

Opening a home checks it once per process (`open_home`): the endpoint must answer within
seconds (short connect timeouts, one retry), credentials must exist, the bucket must exist.
Each failure is an `ObjectStoreError` naming the endpoint and the bucket and saying what to set.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

SCHEME = "s3://"
CONNECT_TIMEOUT_S = 3  # an endpoint that does not accept a connection in this long is unreachable
READ_TIMEOUT_S = 60
CHECK_TIMEOUT_S = 4  # the first request to a home (its check): an endpoint that never answers fails in seconds
ATTEMPTS = 2  # total attempts per request (one retry): a dead endpoint fails in seconds, not minutes
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class ObjectStoreError(RuntimeError):
    """An object-store home that cannot be used (endpoint unreachable, no credentials, no bucket)."""


class PreconditionFailed(ObjectStoreError):
    """A conditional request lost: the object exists (If-None-Match) or changed (If-Match)."""


def is_remote(home: object) -> bool:
    """Whether ``home`` is an object-store URI (``s3://...``)."""
    return isinstance(home, str) and home.startswith(SCHEME)


def parse(uri: str) -> tuple[str, str]:
    """(bucket, prefix without slashes at either end) of ``s3://bucket/prefix``."""
    rest = uri[len(SCHEME):] if uri.startswith(SCHEME) else ""
    bucket, _, prefix = rest.partition("/")
    if not BUCKET_RE.match(bucket):
        raise ObjectStoreError(f"bad object-store home {uri!r}: expected s3://BUCKET/PREFIX with a bucket name of "
                               "3-63 lower-case letters, digits, '.' and '-'")  # fmt: skip
    return bucket, prefix.strip("/")


@dataclass
class S3Home:
    """One object-store home and its clients (made once per process and settings: `open_home`)."""

    uri: str  # s3://bucket/prefix, no trailing slash
    bucket: str
    prefix: str
    endpoint: str | None  # None: AWS's own endpoint for the region
    region: str
    session: object = field(repr=False, default=None)  # the botocore session whose credentials these are
    credentials: object = field(repr=False, default=None)  # botocore Credentials (refreshable ones renew themselves)
    _fs: tuple | None = field(repr=False, default=None, compare=False)  # (keys it was made with, S3FileSystem)
    _lock: threading.Lock = field(repr=False, default_factory=threading.Lock, compare=False)

    def keys(self) -> tuple[str, str, str | None]:
        """(access key, secret key, session token) as of now: botocore renews refreshable
        credentials before they expire, so a long job never signs with expired ones."""
        frozen = self.credentials.get_frozen_credentials()
        return frozen.access_key, frozen.secret_key, frozen.token

    @property
    def where(self) -> str:
        """The endpoint as a user would name it in a message."""
        return self.endpoint or f"AWS S3 ({self.region})"

    # -- names ---------------------------------------------------------------------------------

    def key(self, *parts: str) -> str:
        """The object key of ``parts`` under the home's prefix."""
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p and p.strip("/"))

    def url(self, *parts: str) -> str:
        """``s3://bucket/<key>``: what LanceDB, messages and reports name."""
        return f"{SCHEME}{self.bucket}/{self.key(*parts)}"

    def path(self, *parts: str) -> str:
        """``bucket/<key>``: a path for pyarrow's `S3FileSystem`."""
        return f"{self.bucket}/{self.key(*parts)}"

    # -- clients -------------------------------------------------------------------------------

    @property
    def fs(self):
        """pyarrow's S3 file system for this home (short connect timeout, one retry), with the
        current keys: made again when they changed (pyarrow's keeps the keys it was given)."""
        import pyarrow.fs as pafs

        keys = self.keys()
        with self._lock:
            if self._fs is None or self._fs[0] != keys:
                scheme = "http" if (self.endpoint or "").startswith("http://") else "https"
                access_key, secret_key, token = keys
                self._fs = (keys, pafs.S3FileSystem(access_key=access_key, secret_key=secret_key, session_token=token,
                                                    region=self.region, endpoint_override=self.endpoint, scheme=scheme,
                                                    connect_timeout=CONNECT_TIMEOUT_S, request_timeout=READ_TIMEOUT_S,
                                                    retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=ATTEMPTS)))  # fmt: skip
            return self._fs[1]

    @functools.cached_property
    def client(self):
        """A botocore S3 client (conditional puts and deletes, small objects)."""
        return self._client(READ_TIMEOUT_S)

    def _client(self, read_timeout: float):
        import botocore.config
        import botocore.session

        config = botocore.config.Config(connect_timeout=CONNECT_TIMEOUT_S, read_timeout=read_timeout,
                                        retries={"total_max_attempts": ATTEMPTS, "mode": "standard"},
                                        s3={"addressing_style": "path"} if self.endpoint else None)  # fmt: skip
        # no keys given: the client signs each request with the session's credentials object,
        # renewed when it is refreshable (an explicit key would be fixed for the client's life)
        session = self.session or botocore.session.get_session()
        return session.create_client("s3", region_name=self.region, endpoint_url=self.endpoint, config=config)

    def storage_options(self) -> dict[str, str]:
        """LanceDB's / Lance's object-store options for this home, with the current keys."""
        access_key, secret_key, token = self.keys()
        opts = {"aws_access_key_id": access_key, "aws_secret_access_key": secret_key, "region": self.region,
                "connect_timeout": f"{CONNECT_TIMEOUT_S}s", "timeout": f"{READ_TIMEOUT_S}s"}  # fmt: skip
        if token:
            opts["aws_session_token"] = token
        if self.endpoint:
            opts["endpoint"] = self.endpoint
            opts["allow_http"] = "true" if self.endpoint.startswith("http://") else "false"
        return opts

    # -- small objects (botocore) ----------------------------------------------------------------

    def get(self, *parts: str) -> tuple[bytes, str] | None:
        """(body, ETag) of the object, or None when there is none."""
        try:
            r = self._call("get_object", Key=self.key(*parts))
        except KeyError:
            return None
        return r["Body"].read(), r["ETag"]

    def head(self, *parts: str) -> tuple[str, datetime, datetime] | None:
        """(ETag, last modified, the server's time now) of the object, or None when there is none.
        Ages are computed on the server's clock (its ``Date`` header), never this machine's."""
        try:
            r = self._call("head_object", Key=self.key(*parts))
        except KeyError:
            return None
        from email.utils import parsedate_to_datetime

        date = r["ResponseMetadata"]["HTTPHeaders"].get("date")
        now = parsedate_to_datetime(date) if date else datetime.now(timezone.utc)
        return r["ETag"], r["LastModified"], now

    def put(self, *parts: str, body: bytes, if_none_match: bool = False, if_match: str | None = None) -> str:
        """Write the object whole; returns its ETag. ``if_none_match``: only if it does not exist;
        ``if_match``: only if its ETag is still that one (else `PreconditionFailed`)."""
        kw = {"IfNoneMatch": "*"} if if_none_match else {"IfMatch": if_match} if if_match else {}
        return self._call("put_object", Key=self.key(*parts), Body=body, **kw)["ETag"]

    def delete(self, *parts: str, if_match: str | None = None) -> bool:
        """Remove the object (only if its ETag is ``if_match``, when given); False when it changed."""
        try:
            self._call("delete_object", Key=self.key(*parts), **({"IfMatch": if_match} if if_match else {}))
        except PreconditionFailed:
            return False
        except KeyError:
            return True
        return True

    def list(self, *parts: str, delimiter: str | None = None) -> list[str]:
        """Keys (relative to ``parts``) under the prefix ``parts``; with ``delimiter="/"`` the
        immediate children: objects and "folders" (ending in "/")."""
        prefix = self.key(*parts) + "/"
        out: list[str] = []
        token = None
        while True:
            kw = {"Prefix": prefix, **({"Delimiter": delimiter} if delimiter else {}),
                  **({"ContinuationToken": token} if token else {})}  # fmt: skip
            r = self._call("list_objects_v2", **kw)
            out += [o["Key"][len(prefix):] for o in r.get("Contents", [])]
            out += [p["Prefix"][len(prefix):] for p in r.get("CommonPrefixes", [])]
            token = r.get("NextContinuationToken")
            if not token:
                return sorted(out)

    def delete_prefix(self, *parts: str) -> int:
        """Remove every object under the prefix ``parts``; returns how many."""
        keys = [self.key(*parts, k) for k in self.list(*parts)]
        for i in range(0, len(keys), 1000):
            self._call("delete_objects", Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})
        return len(keys)

    def _call(self, op: str, **kw):
        """One botocore request on the home's bucket; a missing key is KeyError, a lost
        condition `PreconditionFailed`, anything else an `ObjectStoreError` that names the endpoint."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, op)(Bucket=self.bucket, **kw)
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                raise KeyError(kw.get("Key")) from None
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                raise PreconditionFailed(f"{self.url()}/{kw.get('Key', '')[len(self.prefix):].lstrip('/')} changed meanwhile") from e
            raise self.error(e) from e
        except BotoCoreError as e:
            raise self.error(e) from e

    # -- checks and messages ---------------------------------------------------------------------

    def check(self) -> None:
        """The endpoint speaks S3, the bucket exists and answers to our credentials: one listing
        of at most one key, with a short read timeout (an endpoint that accepts connections but
        never answers fails in seconds too)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            prefix = self.key() + "/" if self.prefix else ""
            listing = self._client(CHECK_TIMEOUT_S).list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
        except (ClientError, BotoCoreError) as e:
            raise self.error(e) from e
        if listing.get("Name") != self.bucket:  # a 200 that is no S3 listing (a web page, a proxy)
            raise ObjectStoreError(f"{self.where} answered a bucket listing for the home {self.uri} with something "
                                   "that is not one: is AWS_ENDPOINT_URL an S3-compatible server?")  # fmt: skip

    def error(self, e: BaseException) -> ObjectStoreError:
        """A one-line `ObjectStoreError` for a failed request: what is wrong and what to set."""
        from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ReadTimeoutError

        home = f"the home {self.uri}"
        if isinstance(e, NoCredentialsError):
            return missing_credentials(self.uri)
        if isinstance(e, ClientError):
            code = str(e.response.get("Error", {}).get("Code", ""))
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                return ObjectStoreError(f"bucket {self.bucket!r} does not exist at {self.where} ({home}): create it "
                                        f"first (e.g. `aws s3 mb s3://{self.bucket}` with --endpoint-url {self.where})")  # fmt: skip
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden"):
                return ObjectStoreError(f"{self.where} refused the credentials for {home} ({code or status}): check "
                                        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")  # fmt: skip
            return ObjectStoreError(f"{self.where} answered {code or status} for {home}: is AWS_ENDPOINT_URL an "
                                    f"S3-compatible server? ({_first_line(e)})")  # fmt: skip
        if isinstance(e, ReadTimeoutError):
            return ObjectStoreError(f"the object store at {self.where} accepted a connection but did not answer within "
                                    f"{CHECK_TIMEOUT_S} s for {home}: is AWS_ENDPOINT_URL an S3-compatible server?")  # fmt: skip
        if isinstance(e, EndpointConnectionError) or "connect" in type(e).__name__.lower():
            return ObjectStoreError(f"cannot reach the object store at {self.where} for {home} within "
                                    f"{CONNECT_TIMEOUT_S} s ({_first_line(e)}): check AWS_ENDPOINT_URL and that the "
                                    "server is running")  # fmt: skip
        return ObjectStoreError(f"object store at {self.where} failed for {home}: {_first_line(e)} (check "
                                "AWS_ENDPOINT_URL: is it an S3-compatible server?)")  # fmt: skip


def missing_credentials(uri: str) -> ObjectStoreError:
    return ObjectStoreError(f"no credentials for the object-store home {uri}: set AWS_ACCESS_KEY_ID and "
                            "AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL for MinIO or another S3-compatible server)")  # fmt: skip


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _settings() -> tuple[str | None, str]:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return (endpoint.rstrip("/") if endpoint else None), region


def open_home(uri: str) -> S3Home:
    """The `S3Home` of ``uri`` with the environment's settings, checked (the first time in this
    process for these settings): `ObjectStoreError` when it cannot be used."""
    endpoint, region = _settings()
    keys = tuple(os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"))
    return _open(uri.rstrip("/"), endpoint, region, keys)


@functools.lru_cache(maxsize=16)
def _open(uri: str, endpoint: str | None, region: str, _env_keys: tuple) -> S3Home:
    bucket, prefix = parse(uri)
    if endpoint and not re.match(r"^https?://[^/\s]+", endpoint):
        raise ObjectStoreError(f"bad AWS_ENDPOINT_URL {endpoint!r} for the home {uri}: expected http(s)://HOST[:PORT]")
    import botocore.session

    session = botocore.session.get_session()
    credentials = session.get_credentials()  # the session keeps this object; its clients sign with it
    frozen = credentials.get_frozen_credentials() if credentials is not None else None
    if frozen is None or not frozen.access_key or not frozen.secret_key:
        raise missing_credentials(uri)
    home = S3Home(uri, bucket, prefix, endpoint, region, session, credentials)
    home.check()
    if endpoint and endpoint.startswith("http://"):  # Lance calls made without storage_options read AWS_* variables
        os.environ.setdefault("AWS_ALLOW_HTTP", "true")
    return home


def cache_dir(home: S3Home, *parts: str) -> Path:
    """A local folder for copies of the home's files (models): ``$XDG_CACHE_HOME/atelier/s3/<bucket>/<prefix>/...``."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "atelier" / "s3"
    return root.joinpath(home.bucket, *[p for p in home.prefix.split("/") if p], *parts)


__all__ = ["ObjectStoreError", "PreconditionFailed", "S3Home", "cache_dir", "is_remote", "open_home", "parse"]
