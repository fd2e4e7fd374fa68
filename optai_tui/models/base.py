"""The head API shared by every registered model.

Every model splits into a *backbone* that maps images to a pooled, flattened feature vector of size
``num_features`` and a *head* (``self.classifier``) that maps features to logits. Transfer learning
(freezing, parameter groups, replacing the head) only ever talks to this API, never to a family.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

HEAD_ATTR = "classifier"


def scaled(channels: int, width: float) -> int:
    """Scale a channel count by the width multiplier: rounded, at least 1 (width=1 is exact)."""
    return max(1, int(round(channels * width)))


class ImageClassifier(nn.Module):
    """Base class: subclasses set ``num_features`` and ``classifier`` and implement ``forward_features``.

    ``forward(x) == forward_head(forward_features(x))``.
    """

    num_features: int
    num_classes: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``[N, C, H, W]`` -> pooled, flattened features ``[N, num_features]``."""
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Features ``[N, num_features]`` -> logits ``[N, num_classes]``."""
        return self.classifier(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    # -- head ---------------------------------------------------------------------------------
    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, head: nn.Module | None = None) -> None:
        """Replace the head.

        With ``head`` given, that module becomes the classifier (it must accept ``[N, num_features]``
        and should output ``num_classes`` logits). Otherwise a fresh ``Linear(num_features,
        num_classes)``; ``num_classes=0`` gives an ``Identity`` head, so ``forward`` returns features.
        The new head is placed on the device (and floating dtype) of the existing parameters.
        """
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        if head is None:
            head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        ref = next(self.backbone_parameters(), None)
        if ref is not None:
            head = head.to(device=ref.device, dtype=ref.dtype)
        self.classifier = head
        self.num_classes = num_classes

    # -- backbone / head split ----------------------------------------------------------------
    def head_modules(self) -> list[nn.Module]:
        return [self.classifier]

    def backbone_modules(self) -> list[nn.Module]:
        """Direct children that belong to the backbone (everything but the classifier)."""
        return [m for name, m in self.named_children() if name != HEAD_ATTR]

    def named_head_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        return ((f"{HEAD_ATTR}.{n}", p) for n, p in self.classifier.named_parameters())

    def named_backbone_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        prefix = HEAD_ATTR + "."
        head_ids = {id(p) for p in self.classifier.parameters()}
        for name, p in self.named_parameters():
            if not name.startswith(prefix) and id(p) not in head_ids:
                yield name, p

    def head_parameters(self) -> Iterator[nn.Parameter]:
        return (p for _, p in self.named_head_parameters())

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        return (p for _, p in self.named_backbone_parameters())
