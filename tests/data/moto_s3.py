"""A real S3 endpoint on loopback for tests: moto's threaded server, found by s3fs (and by the
CLI in subprocesses) through ``AWS_ENDPOINT_URL``, the variable a user sets for MinIO or another
S3-compatible store. Used by the data, metrics and integration tests."""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator

#: Dummy credentials; ``AWS_EC2_METADATA_DISABLED`` keeps botocore from probing an instance role
#: (seconds of timeouts when credentials are removed on purpose).
_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_SESSION_TOKEN": "testing", "AWS_EC2_METADATA_DISABLED": "true"}


@contextlib.contextmanager
def moto_s3() -> Iterator[str]:
    """Start the server on 127.0.0.1 (random port), point the environment at it, yield its URL;
    stop it and restore the previous environment afterwards."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {"AWS_ENDPOINT_URL": endpoint, **_ENV}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # a cached client would keep an older endpoint
    try:
        yield endpoint
    finally:
        server.stop()
        s3fs.S3FileSystem.clear_instance_cache()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def new_bucket(prefix: str = "mgd") -> str:
    """Create a bucket with a fresh name (3+ characters; no LocationConstraint, which us-east-1 refuses)."""
    import s3fs

    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem().mkdir(name)
    return name
