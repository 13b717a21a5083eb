"""One way to load a timm model with weights: from the Hugging Face hub, from a local file
(through timm's own pretrained path, so key remapping, position-embedding resizing and
head adaptation apply), or random. Used by the ViT models and by ``symtrain lie``.

Weights that do not fit are an error, never a warning: a local file must be readable and
load every weight of the model (except a classifier that is deliberately not loaded),
with no key left over and no size mismatch."""

from __future__ import annotations

import contextlib
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

from torch import nn

from ..errors import SymmetryError

HUB_PROBE_TIMEOUT = 3.0  # seconds: one attempt to reach the hub before a download


class WeightsUnavailableError(SymmetryError, FileNotFoundError):
    """Weights could not be loaded: no such local file, or the hub is unreachable (no
    network, no cached copy). Both a ``ValueError`` and a ``FileNotFoundError``."""


class WeightsMismatchError(WeightsUnavailableError):
    """A weights file exists but cannot be loaded into the model: it is not a readable
    weights file, or its keys or tensor sizes do not fit the model."""


def _short(keys: list[str], n: int = 8) -> str:
    return f"{len(keys)} {keys[:n]}" + (" ..." if len(keys) > n else "")


def read_weights(path: str | os.PathLike) -> dict:
    """The state dict stored in ``path`` (``.safetensors``, or a torch ``.pth`` / ``.bin``
    file, possibly wrapping it under ``state_dict`` / ``model``); a file that cannot be
    read raises :class:`WeightsMismatchError` naming it."""
    import torch

    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # safetensors, pickle and zip errors: all mean "not readable"
        raise WeightsMismatchError(
            f"weights file {str(path)!r} is not a readable {path.suffix or 'weights'} file "
            f"({type(err).__name__}: {str(err).splitlines()[0][:150] if str(err) else 'no detail'}); "
            "it may be truncated or corrupt") from None
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise WeightsMismatchError(f"weights file {str(path)!r} holds a {type(state).__name__}, not a state dict")
    return state


@contextlib.contextmanager
def _checked_load(model_name: str, path: Path) -> Iterator[None]:
    """While timm loads the file, make its ``load_state_dict`` report every missing and
    unexpected key and any size mismatch as a :class:`WeightsMismatchError`."""
    original = nn.Module.load_state_dict
    calls: list[int] = []

    def load_state_dict(module: nn.Module, state_dict, strict: bool = True, assign: bool = False):
        calls.append(1)
        try:
            result = original(module, state_dict, strict=False, assign=assign)
        except RuntimeError as err:  # size mismatches are raised even when not strict
            lines = [line.strip() for line in str(err).splitlines() if "size mismatch" in line]
            raise WeightsMismatchError(
                f"weights file {str(path)!r} does not fit {model_name!r}: {len(lines)} tensors of the "
                f"wrong size, first: {lines[0] if lines else str(err)[:300]}") from None
        # a registered model without a pretrained config has classifier None: timm's default name
        classifier = (getattr(module, "default_cfg", None) or {}).get("classifier") or "head"
        heads = (classifier,) if isinstance(classifier, str) else tuple(classifier)
        # timm drops the file's classifier when it is not wanted (strict=False then): the
        # model's own classifier is then new, not missing.
        missing = [k for k in result.missing_keys
                   if strict or not any(k.startswith(h + ".") for h in heads)]
        if missing or result.unexpected_keys:
            loaded = len(state_dict) - len(result.unexpected_keys)
            raise WeightsMismatchError(
                f"weights file {str(path)!r} does not fit {model_name!r}: {loaded} of its "
                f"{len(state_dict)} tensors match the model; missing keys {_short(missing)}; "
                f"unexpected keys {_short(result.unexpected_keys)}")
        return result

    nn.Module.load_state_dict = load_state_dict
    try:
        yield
    finally:
        nn.Module.load_state_dict = original
    if not calls:  # a builder that ignores pretrained / pretrained_cfg: the file was never read
        raise WeightsMismatchError(
            f"weights file {str(path)!r} was not loaded: the timm builder of {model_name!r} ignores "
            "pretrained weights (a model registered without timm's build_model_with_cfg); the model "
            "would silently keep its random initialisation")


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT) -> bool:
    """Whether the Hugging Face hub (``HF_ENDPOINT``) answers within ``timeout`` seconds
    (any HTTP answer counts); ``False`` at once when ``HF_HUB_OFFLINE`` is set."""
    from huggingface_hub import constants

    if constants.is_offline_mode():
        return False
    try:
        urllib.request.urlopen(urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=timeout)
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False
    return True


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """Hugging Face hub offline mode (cached files only, no retries) for a while."""
    from huggingface_hub import constants

    old, constants.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE, True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old


def load_timm_model(name: str, *, pretrained: bool = False, checkpoint: str | os.PathLike | None = None,
                    checkpoint_head: bool | None = None, **kwargs: Any) -> nn.Module:
    """``timm.create_model(name, **kwargs)`` with weights from ``checkpoint`` (a local
    ``.pth`` / ``.bin`` / ``.safetensors`` file; ``pretrained`` is then implied), the hub
    (``pretrained=True``), or random.

    ``checkpoint_head``: load the file's classifier too (its size must match
    ``num_classes``). By default it is loaded when ``num_classes`` is given and positive,
    and dropped otherwise (timm drops a classifier whose class count differs).

    A file that is not readable, or whose weights do not all fit the model (missing or
    unexpected keys, wrong sizes), raises :class:`WeightsMismatchError`. Without network
    access (``HF_HUB_OFFLINE``, or the hub not answering within a few seconds) only a
    cached copy of hub weights is used, else :class:`WeightsUnavailableError` at once.
    """
    import timm

    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(
                f"weights file not found: {str(path)!r} does not exist or is not a file (pass an "
                "existing .pth / .bin / .safetensors file, or pretrained=False)")
        read_weights(path)  # a corrupt file is named here, not deep inside timm
        overlay: dict[str, Any] = dict(file=str(path))
        if checkpoint_head is None:
            checkpoint_head = bool(kwargs.get("num_classes"))
        if checkpoint_head:
            overlay["num_classes"] = kwargs.get("num_classes")
        with _checked_load(name, path):
            return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    if not pretrained:
        return timm.create_model(name, pretrained=False, **kwargs)
    online = hub_reachable()
    try:
        with contextlib.nullcontext() if online else _offline():
            return timm.create_model(name, pretrained=True, **kwargs)
    except Exception as err:  # network, hub or missing-weights errors all end here
        reason = ("the hub is unreachable (HF_HUB_OFFLINE is set, or no answer within "
                  f"{HUB_PROBE_TIMEOUT:g} s) and no cached copy exists" if not online
                  else f"{type(err).__name__}: {str(err)[:200]}")
        raise WeightsUnavailableError(
            f"could not load pretrained weights for {name!r} from the Hugging Face hub: {reason}. "
            "Without network access, download the weights elsewhere and pass a local weights file "
            "(checkpoint=PATH; on the command line --checkpoint PATH or --set model.checkpoint=PATH), "
            "or use random weights (pretrained=False; --no-pretrained).") from err
