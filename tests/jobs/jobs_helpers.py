"""Shared by the job tests: the environment job processes run with, and a wait limit."""

from __future__ import annotations

import contextlib

import pytest

from engine_helpers import cli_env

#: What job processes need here: offline, one thread (the machine is shared, and one thread fixes
#: the float summation order, so a resumed run can be compared bit for bit), CPU only.
JOB_ENV = {k: v for k, v in cli_env().items()
           if k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM", "WANDB_MODE",
                    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONUNBUFFERED", "CUDA_VISIBLE_DEVICES")}
#: A job's wait limit: the tiny runs take 10-60 s each on a loaded 2-core machine.
JOB_TIMEOUT = 600


@contextlib.contextmanager
def job_environment():
    """Processes started inside (runners, and through them supervisors and actions) inherit JOB_ENV."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in JOB_ENV.items():
            patch.setenv(key, value)
        yield
