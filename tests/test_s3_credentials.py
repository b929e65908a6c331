"""Temporary credentials on an object-store home (STS: an assumed role, SSO, an instance role)
expire while a long job runs: each of the home's three clients must present the renewed keys."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
from botocore.credentials import RefreshableCredentials

import store.objectstore as objectstore
from flows.jobs.embed_write import vector_rows
from store import VectorStore
from store.vector_index import CACHE


def _expiring(clock: list[datetime], issued: list[str]) -> RefreshableCredentials:
    """Credentials that live one hour on ``clock`` and are renewed (new keys) after it."""

    def renew() -> dict:
        issued.append(f"temporary-{len(issued) + 1}")
        return {"access_key": issued[-1], "secret_key": f"secret-{len(issued)}", "token": f"token-{len(issued)}",
                "expiry_time": (clock[0] + timedelta(hours=1)).isoformat()}  # fmt: skip

    first = renew()
    return RefreshableCredentials(first["access_key"], first["secret_key"], first["token"],
                                  datetime.fromisoformat(first["expiry_time"]), renew, "sts-test",
                                  time_fetcher=lambda: clock[0])  # fmt: skip


def _signed_with(home) -> list[str]:
    """The access keys of the botocore client's requests, as they are sent."""
    keys: list[str] = []

    def seen(request, **_):
        keys.append(request.headers["Authorization"].decode().split("Credential=")[1].split("/")[0])

    home.client.meta.events.register("before-send.s3", seen)
    return keys


def _rows(n: int) -> pa.Table:
    ids = [f"item-{i}" for i in range(n)]
    meta = pa.table({"item_id": ids, "dataset": ["polyvore"] * n, "semantic_category": ["tops"] * n,
                     "split": ["train"] * n, "image_sha1": ids})  # fmt: skip
    return vector_rows(meta, np.random.default_rng(0).normal(size=(n, 8)), "resnet", "resnet/v1@test")


def test_expiring_credentials_are_renewed_for_every_client(s3_home, monkeypatch):
    import botocore.session

    clock, issued = [datetime.now(timezone.utc)], []
    session = botocore.session.get_session()
    session._credentials = _expiring(clock, issued)  # what botocore's resolver hands a session for an assumed role
    home = dataclasses.replace(objectstore.open_home(s3_home), session=session, credentials=session._credentials, _fs=None)
    monkeypatch.setattr(objectstore, "open_home", lambda uri: home)
    sent = _signed_with(home)

    home.put("probe", body=b"1")
    fs = home.fs
    store = VectorStore(s3_home)
    store.upsert("resnet", _rows(5))
    assert sent == ["temporary-1"] and store.storage_options["aws_access_key_id"] == "temporary-1"
    assert CACHE.options[store.uri]["aws_session_token"] == "token-1"

    clock[0] += timedelta(minutes=30)  # still valid: nothing renewed, nothing made again
    assert home.keys()[0] == "temporary-1" and home.fs is fs

    clock[0] += timedelta(hours=1)  # expired: botocore renews them at the next use
    home.put("probe", body=b"2")
    assert sent[-1] == "temporary-2" and issued == ["temporary-1", "temporary-2"]
    assert home.fs is not fs and isinstance(home.fs, pafs.S3FileSystem) and home.fs is home.fs
    store.upsert("resnet", _rows(8))  # the LanceDB connection is made again with the renewed keys
    assert store.storage_options["aws_access_key_id"] == "temporary-2"
    assert CACHE.options[store.uri]["aws_session_token"] == "token-2"
    assert store.read("resnet", ["item_id"]).num_rows == 8
    assert home.get("probe")[0] == b"2"
    with home.fs.open_input_stream(home.path("probe")) as f:  # pyarrow reads with the renewed keys
        assert f.read() == b"2"
