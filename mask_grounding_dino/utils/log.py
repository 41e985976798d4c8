"""The package's messages go through :mod:`logging`, under the ``mask_grounding_dino`` logger.

Library code (actions, engine, deploy, export, model) never prints: it calls
``log = get_logger(__name__)`` and ``log.info`` / ``log.warning``. A program that imports the
package decides where those records go (its own logging set-up); importing installs nothing.

The command line (``cli.main``) calls :func:`enable_console`: INFO lines are printed as they are
on stdout, warnings with a ``warning:`` prefix (stdout too: they belong with the lines around
them), errors on stderr. Every process of a multi-process (DDP) run but rank 0 keeps only
errors, so a message is shown once, not once per process.
"""

from __future__ import annotations

import logging
import os
import sys

PACKAGE = "mask_grounding_dino"


def get_logger(name: str) -> logging.Logger:
    """The logger of module ``name`` (``__name__``): a child of the package's logger."""
    return logging.getLogger(name if name.startswith(PACKAGE) else f"{PACKAGE}.{name}")


def process_rank() -> int:
    """This process's global rank: torch.distributed's once initialised, else the launcher's
    environment (Lightning and torchrun set ``RANK`` / ``LOCAL_RANK`` before the group exists)."""
    try:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            return int(dist.get_rank())
    except Exception:  # noqa: BLE001 - torch missing or half set up: fall back to the environment
        pass
    for var in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


class RankZeroFilter(logging.Filter):
    """Drops records below ERROR on every process but rank 0."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or process_rank() == 0


class ConsoleHandler(logging.Handler):
    """Plain lines for a terminal or a log file: ``message``, ``warning: message``, ``error: message``.

    The stream is looked up when a record is written (not when the handler is made), so a
    redirected ``sys.stdout`` (a test's capture, a notebook) receives the lines.
    """

    _PREFIX = {logging.WARNING: "warning: ", logging.ERROR: "error: ", logging.CRITICAL: "error: "}

    def __init__(self, level: int = logging.INFO):
        super().__init__(level)
        self.addFilter(RankZeroFilter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            prefix = self._PREFIX.get(record.levelno, "")
            if prefix and not text.startswith(prefix):
                text = prefix + text
            stream = sys.stderr if record.levelno >= logging.ERROR else sys.stdout
            stream.write(text + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


def enable_console(level: int = logging.INFO) -> logging.Logger:
    """Show the package's messages on the console (the command line does this); idempotent."""
    logger = logging.getLogger(PACKAGE)
    if not any(isinstance(h, ConsoleHandler) for h in logger.handlers):
        logger.addHandler(ConsoleHandler(level))
    logger.setLevel(level)
    return logger
