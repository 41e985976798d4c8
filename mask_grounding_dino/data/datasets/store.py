"""Records held compactly: one numpy byte buffer plus offsets (TAO's ``dataset_type: serialized``).

A list of a million small Python objects is touched (reference counts) by every DataLoader
worker that reads it, which defeats copy-on-write after ``fork``: each worker ends up with
its own copy. Pickling every record into one contiguous ``uint8`` array (and an ``int64``
offset array) gives two objects whose pages are only ever read, so workers share them.
``serialized=False`` keeps the plain list (TAO's ``dataset_type: default``).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from typing import Any

import numpy as np


class RecordStore:
    """An indexable, read-only sequence of records.

    Args:
        records: any picklable objects.
        serialized: pack them into a byte buffer (True) or keep a list (False).
    """

    def __init__(self, records: Iterable[Any], serialized: bool = True):
        self.serialized = bool(serialized)
        if not self.serialized:
            self._items = list(records)
            return
        # Streamed into one growing buffer: records are never all alive as objects at once.
        buffer = bytearray()
        ends = []
        for record in records:
            buffer += pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
            ends.append(len(buffer))
        self._offsets = np.concatenate([[0], np.asarray(ends, dtype=np.int64)]).astype(np.int64)
        self._buffer = np.frombuffer(buffer, dtype=np.uint8)
        self._buffer.flags.writeable = False

    def __len__(self) -> int:
        return len(self._items) if not self.serialized else len(self._offsets) - 1

    def __getitem__(self, index: int) -> Any:
        if not self.serialized:
            return self._items[index]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"record {index} out of range (0..{len(self) - 1})")
        start, end = int(self._offsets[index]), int(self._offsets[index + 1])
        return pickle.loads(self._buffer[start:end].tobytes())

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    @property
    def nbytes(self) -> int:
        """Bytes held by the serialised buffers (0 for a plain list)."""
        return 0 if not self.serialized else int(self._buffer.nbytes + self._offsets.nbytes)
