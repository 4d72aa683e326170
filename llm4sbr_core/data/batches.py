"""Samples → padded tensors, loaded once; batches are index slices (no per-sample Python).

A split's samples (``results/{dataset}/data/{split}.parquet``) become one right-padded
LongTensor of item ids [S, L] (0 = padding, the most recent ``max_len`` items kept) plus
lengths and targets. A batch is a :class:`SessionBatch` cut from those tensors and
trimmed to its own longest session.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from ..errors import InvalidInputError


@dataclass
class SessionBatch:
    """A batch of sessions, right-padded: ``items[b, :lengths[b]]`` are real clicks in
    click order (oldest first), the rest is 0."""

    items: torch.Tensor  # long [B, L]
    lengths: torch.Tensor  # long [B]
    targets: torch.Tensor  # long [B]
    sample_ids: torch.Tensor  # long [B], row of per-sample arrays (intents, ranks)

    @property
    def mask(self) -> torch.Tensor:
        """bool [B, L]: True at real clicks."""
        return self.items > 0

    @property
    def last_items(self) -> torch.Tensor:
        """long [B]: the most recent click of each session."""
        return self.items.gather(1, (self.lengths - 1).view(-1, 1)).squeeze(1)

    def to(self, device: torch.device | str) -> SessionBatch:
        return SessionBatch(*(t.to(device, non_blocking=True) for t in
                              (self.items, self.lengths, self.targets, self.sample_ids)))


@dataclass
class SampleTensors:
    items: torch.Tensor  # long [S, L]
    lengths: torch.Tensor  # long [S]
    targets: torch.Tensor  # long [S]
    sample_ids: torch.Tensor  # long [S]
    #: long [S], the session each sample is a prefix of (None when not known): samples
    #: of one session are not independent, so tests cluster them
    session_ids: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.targets)

    def batch(self, index: torch.Tensor) -> SessionBatch:
        lengths = self.lengths[index]
        width = int(lengths.max())
        return SessionBatch(self.items[index, :width], lengths, self.targets[index],
                            self.sample_ids[index])

    def batches(self, batch_size: int, shuffle: bool = False,
                generator: torch.Generator | None = None) -> Iterator[SessionBatch]:
        order = (torch.randperm(len(self), generator=generator) if shuffle
                 else torch.arange(len(self)))
        for start in range(0, len(self), batch_size):
            yield self.batch(order[start:start + batch_size])


def load_samples(path: str | Path, max_len: int | None = None) -> SampleTensors:
    """Read a samples parquet into padded tensors, keeping the last ``max_len`` clicks."""
    columns = ["sample_id", "items", "target"]
    try:
        has_sessions = "session_id" in pq.read_schema(path).names
        table = pq.read_table(path, columns=columns + ["session_id"] * has_sessions)
    except (pa.ArrowInvalid, OSError) as e:
        raise InvalidInputError(f"cannot read the samples ({e}); the file is damaged or "
                                "truncated: delete it and run the data stage again (or "
                                "snakemake --forcerun build_dataset)", path) from None
    lengths = pc.list_value_length(table["items"]).to_numpy().astype(np.int64)
    flat = pc.list_flatten(table["items"]).to_numpy().astype(np.int64)
    if len(lengths) == 0:
        raise InvalidInputError("no samples", path)
    if (lengths < 1).any():
        raise InvalidInputError("a sample has an empty input session", path)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    keep = np.minimum(lengths, max_len) if max_len else lengths
    width = int(keep.max())
    items = np.zeros((len(lengths), width), dtype=np.int64)
    rows = np.repeat(np.arange(len(lengths)), keep)
    cols = np.arange(keep.sum()) - np.repeat(np.cumsum(keep) - keep, keep)
    src = np.repeat(starts + lengths - keep, keep) + cols  # the last `keep` clicks
    items[rows, cols] = flat[src]
    sessions = (torch.from_numpy(table["session_id"].to_numpy().astype(np.int64))
                if has_sessions else None)
    return SampleTensors(torch.from_numpy(items), torch.from_numpy(keep),
                         torch.from_numpy(table["target"].to_numpy().astype(np.int64)),
                         torch.from_numpy(table["sample_id"].to_numpy().astype(np.int64)),
                         sessions)


def count_items(items_path: str | Path) -> int:
    """N, the number of items (ids 1..N; 0 is padding) of a dataset's items.parquet."""
    ids = pq.read_table(items_path, columns=["item_id"])["item_id"].to_numpy()
    if len(ids) == 0 or ids.min() != 1 or ids.max() != len(ids):
        raise InvalidInputError("item ids are not 1..N", items_path)
    return len(ids)
