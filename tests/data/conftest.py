"""Fixtures for the data tests: small PNG files and a real S3 endpoint on loopback (moto)."""

from __future__ import annotations

import logging
import os
import pathlib
import uuid

import numpy as np
import pytest
from PIL import Image


def _write_png(path, width: int = 24, height: int = 16, seed: int = 0) -> np.ndarray:
    """Write a small RGB PNG with random pixels; returns its ``[H, W, 3]`` uint8 array."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


@pytest.fixture
def write_png():
    return _write_png


@pytest.fixture(scope="session")
def s3_endpoint():
    """A moto S3 server on 127.0.0.1 (random port) with s3fs pointed at it through
    ``AWS_ENDPOINT_URL`` - the same variable a user sets for MinIO or another endpoint.
    Dummy credentials only; the previous environment is restored afterwards."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_SESSION_TOKEN": "testing"}
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


@pytest.fixture
def s3_bucket(s3_endpoint):
    """A fresh bucket name (3+ characters, created without a LocationConstraint)."""
    import s3fs

    name = f"mgd-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem().mkdir(name)
    return name
