"""Make the sibling helper module ``_coco_synthetic`` (and the data tests' S3 server) importable
(pytest runs in importlib mode)."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "data"))

from moto_s3 import moto_s3, new_bucket  # noqa: E402


@pytest.fixture(scope="module")
def s3_bucket():
    """A bucket on a moto S3 server on 127.0.0.1 (see tests/data/moto_s3.py)."""
    with moto_s3():
        yield new_bucket()
