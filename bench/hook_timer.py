"""Inclusive time per named component of a model, for the benchmarks' ``--profile``.

Forward pre-/post-hooks on every module whose qualified name matches a component's regex
add the time between them to that component; :meth:`HookTimer.timed` wraps other methods
(modules called through something other than ``forward``). Nested matches each count in full.
"""

from __future__ import annotations

import time
from collections import defaultdict


class HookTimer:
    """``patterns``: ``[(label, compiled regex on module names)]``; ``clock``: a seconds clock."""

    def __init__(self, model, patterns, clock=time.perf_counter):
        self.clock = clock
        self.totals: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.handles = []
        for name, module in model.named_modules():
            for label, pattern in patterns:
                if pattern.match(name):
                    self.handles.append(module.register_forward_pre_hook(self._start(module)))
                    self.handles.append(module.register_forward_hook(self._stop(label, module)))

    def _start(self, module):
        def hook(*_):
            module._bench_t0 = self.clock()
        return hook

    def _stop(self, label, module):
        def hook(*_):
            self.totals[label] += self.clock() - module._bench_t0
            self.counts[label] += 1
        return hook

    def timed(self, label, fn):
        """``fn`` wrapped so that its calls count for ``label``."""
        def wrapper(*args, **kwargs):
            t0 = self.clock()
            try:
                return fn(*args, **kwargs)
            finally:
                self.totals[label] += self.clock() - t0
                self.counts[label] += 1
        return wrapper

    def reset(self):
        self.totals.clear()
        self.counts.clear()

    def remove(self):
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
