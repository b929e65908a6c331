"""A local S3-compatible server for tests: moto's server mode (`moto[server]`, the `test` extra)
on a free port, in a child process; fixtures set the standard AWS environment variables.

    (tests/conftest.py imports the fixtures s3_endpoint and s3_home: every test module has them)
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid

import pytest

KEY, SECRET, REGION = "atelier-test", "atelier-test-secret", "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server() -> tuple[subprocess.Popen, str]:
    """moto's S3 server on a free port; (process, endpoint URL) once it accepts connections."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto server did not start within 60 s")


def aws_env(endpoint: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip


def make_bucket(endpoint: str, name: str | None = None) -> str:
    import boto3

    name = name or f"atelier-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                 region_name=REGION).create_bucket(Bucket=name)  # fmt: skip
    return name


@pytest.fixture(scope="session")
def s3_endpoint():
    """The endpoint URL of one moto server for the session."""
    proc, endpoint = start_server()
    yield endpoint
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def s3_home(s3_endpoint, monkeypatch) -> str:
    """``s3://<fresh bucket>/home`` with the AWS environment pointing at the moto server."""
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3", "ATELIER_HOME"):
        monkeypatch.delenv(k, raising=False)
    for k, v in aws_env(s3_endpoint).items():
        monkeypatch.setenv(k, v)
    return f"s3://{make_bucket(s3_endpoint)}/home"


__all__ = ["aws_env", "make_bucket", "s3_endpoint", "s3_home", "start_server"]
