"""One way to load a timm model with weights: from the Hugging Face hub, from a local file
(through timm's own pretrained path, so key remapping, position-embedding resizing and
head adaptation apply), or random. Used by the ViT models and by ``symtrain lie``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import SymmetryError


class WeightsUnavailableError(SymmetryError, FileNotFoundError):
    """Weights could not be loaded: no such local file, or the hub is unreachable (no
    network, no cached copy). Both a ``ValueError`` and a ``FileNotFoundError``."""


def load_timm_model(name: str, *, pretrained: bool = False, checkpoint: str | os.PathLike | None = None,
                    checkpoint_head: bool | None = None, **kwargs: Any) -> nn.Module:
    """``timm.create_model(name, **kwargs)`` with weights from ``checkpoint`` (a local
    ``.pth`` / ``.bin`` / ``.safetensors`` file; ``pretrained`` is then implied), the hub
    (``pretrained=True``), or random.

    ``checkpoint_head``: load the file's classifier too (its size must match
    ``num_classes``). By default it is loaded when ``num_classes`` is given and positive,
    and dropped otherwise (timm drops a classifier whose class count differs).
    """
    import timm

    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(
                f"weights file not found: {str(path)!r} does not exist or is not a file (pass an "
                "existing .pth / .bin / .safetensors file, or pretrained=False)")
        overlay: dict[str, Any] = dict(file=str(path))
        if checkpoint_head is None:
            checkpoint_head = bool(kwargs.get("num_classes"))
        if checkpoint_head:
            overlay["num_classes"] = kwargs.get("num_classes")
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    if not pretrained:
        return timm.create_model(name, pretrained=False, **kwargs)
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except Exception as err:  # network, hub or missing-weights errors all end here
        raise WeightsUnavailableError(
            f"could not load pretrained weights for {name!r} from the Hugging Face hub "
            f"({type(err).__name__}: {str(err)[:200]}). Without network access, download the "
            "weights elsewhere and pass a local weights file (checkpoint=PATH; on the command "
            "line --checkpoint PATH or --set model.checkpoint=PATH), or use random weights "
            "(pretrained=False; --no-pretrained). Set HF_HUB_OFFLINE=1 to skip the download "
            "retries when offline.") from err
