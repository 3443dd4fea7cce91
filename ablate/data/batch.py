"""`Batch`: what the training loop consumes (see docs/architecture.md, "Data")."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, T) long
    attention_mask: torch.Tensor  # (B, T) long, 1 on real tokens
    labels: torch.Tensor  # (B, T) long, -100 on visual tokens, padding, <bos> (and prompts)
    images: list[str]  # image paths, in the order their token blocks appear (row by row)
    n_images: torch.Tensor  # (B,) long, images per row
    data_state: dict | None = None  # where the data stream stands after this batch's rows (for resuming there)
    position_ids: torch.Tensor | None = None  # (B, T) packed rows (`data.packing`): restarting at 0 with each row
    # per image, `(crops, 3, R, R)` decoded and preprocessed by a loader worker (`data.workers` > 0, else None)
    pixel_values: list[torch.Tensor] | None = None

    def pin_memory(self) -> Batch:
        """The batch with its tensors in pinned memory (what `DataLoader(pin_memory=True)` calls)."""
        return replace(self, input_ids=self.input_ids.pin_memory(), attention_mask=self.attention_mask.pin_memory(),
                       labels=self.labels.pin_memory(), n_images=self.n_images.pin_memory(),
                       position_ids=None if self.position_ids is None else self.position_ids.pin_memory(),
                       pixel_values=None if self.pixel_values is None else [p.pin_memory() for p in self.pixel_values])

    @property
    def padding_fraction(self) -> float:
        """Share of the (B, T) positions that are padding."""
        return 1.0 - float(self.attention_mask.sum()) / max(1, self.attention_mask.numel())

    def to(self, device) -> Batch:
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device),
                     self.images, self.n_images.to(device))
