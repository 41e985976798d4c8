"""A small least-recently-used cache of a prompt's text-side results, shared by the backends."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class PromptCache:
    """Up to ``size`` entries; the least recently used one goes first. ``size`` 0 keeps nothing."""

    def __init__(self, size: int):
        self.size = int(size)
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The entry for ``key``, made with ``compute()`` (and kept) when it is not there."""
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        value = compute()
        if self.size > 0:
            self._entries[key] = value
            if len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return value
