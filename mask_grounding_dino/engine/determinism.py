"""Bit-identical CPU training: torch's deterministic kernels for the duration of a fit.

``train.cudnn.deterministic`` (TAO's key, default true) asks cuDNN for deterministic
algorithms on a GPU. On the CPU the same key switches torch to its deterministic kernels
(``utils/cpu.py`` says which op needs it and why), so two runs with the same seed, spec,
thread count and machine give the same weights however busy the machine is. The setting is
process-wide in torch; this callback scopes it to the fit and restores it afterwards (a
notebook or test process goes on with its own setting).
"""

from __future__ import annotations

from contextlib import ExitStack

import lightning.pytorch as pl

from ..utils.cpu import deterministic_algorithms


class DeterministicCpu(pl.Callback):
    """Deterministic CPU kernels from ``setup`` of a fit to its ``teardown`` (or an exception)."""

    def __init__(self) -> None:
        self._scope: ExitStack | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit" and self._scope is None:
            self._scope = ExitStack()
            self._scope.enter_context(deterministic_algorithms(True))

    def _close(self) -> None:
        if self._scope is not None:
            self._scope.close()
            self._scope = None

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._close()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._close()
