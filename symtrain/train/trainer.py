"""The training loop, on Hugging Face Accelerate.

One loop for every symmetrization method: the model (plain or wrapped) is prepared by
Accelerate (one CPU, one GPU, ``accelerate launch`` / ``torchrun`` processes; bf16/fp16
autocast; gradient accumulation), the loss is the task loss (or REMUL's), plus any
auxiliary loss the model exposes through ``aux_loss()`` (the LPS entropy penalty).

Exact resume: the data order of epoch ``e`` is a permutation drawn from
``seed + e`` alone; the step counter, epoch and position in the epoch are a registered
checkpoint object; ``accelerator.save_state`` stores model, optimizer, scheduler and
every process's RNG states. Evaluation runs under ``torch.random.fork_rng`` with its
own seed, so it never moves the training RNG. Checkpoints are written to a temporary
folder and renamed; a ``latest.json`` pointer, replaced atomically, names the last
complete one.

Run directory: ``config.yaml`` (resolved recipe), ``train.log``, ``metrics.csv`` (every
logged value, through an Accelerate tracker; TensorBoard too when it is installed),
``checkpoints/``, ``metrics.json`` (final metrics).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import torch
import yaml
from torch import Tensor, nn

from ..errors import SymmetryError
from ..symmetrize.base import call_model
from .builders import Built, Task, build, collate_batch, lr_lambda, param_groups
from .config import ConfigError, Recipe

logger = logging.getLogger("symtrain.train")


class TrainingDiverged(SymmetryError):
    """The loss became NaN or infinite."""


class EpochSampler(torch.utils.data.Sampler):
    """A permutation of ``range(n)`` that depends only on ``seed`` and the epoch set by
    :meth:`set_epoch`: the data order is a function of the step, so resuming from a
    checkpoint replays it exactly, with any number of processes."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=gen).tolist())

    def __len__(self) -> int:
        return self.n


class TrainState:
    """Progress, checkpointed with the run (``register_for_checkpointing``)."""

    def __init__(self):
        self.step = 0          # optimizer steps done
        self.epoch = 0
        self.batches = 0       # micro-batches consumed in the current epoch
        self.skipped = 0       # steps skipped for non-finite gradients

    def state_dict(self) -> dict:
        return {"step": self.step, "epoch": self.epoch, "batches": self.batches, "skipped": self.skipped}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.epoch, self.batches = int(state["step"]), int(state["epoch"]), int(state["batches"])
        self.skipped = int(state.get("skipped", 0))


def csv_tracker(logging_dir: str | Path):
    """An Accelerate tracker writing ``metrics.csv`` (one row per log call; the columns
    grow as new keys appear) in ``logging_dir``."""
    from accelerate.tracking import GeneralTracker

    class CSVTracker(GeneralTracker):
        name = "csv"
        requires_logging_directory = True

        def __init__(self, run_name: str, logging_dir: str | Path):
            super().__init__()
            self.path = Path(logging_dir) / "metrics.csv"
            self.rows: list[dict] = []
            self.keys: list[str] = []
            if self.path.is_file():
                with open(self.path, newline="") as f:
                    self.rows = [{k: v for k, v in r.items() if v != ""} for r in csv.DictReader(f)]
            self._write()

        @property
        def tracker(self):
            return self

        def truncate(self, step: int) -> None:
            """Drop rows logged after ``step`` (a resumed run logs them again)."""
            self.rows = [r for r in self.rows if int(r["step"]) <= step]
            self._write()

        def store_init_configuration(self, values: dict) -> None:
            pass

        def log(self, values: dict, step: int | None = None, **kwargs) -> None:
            row = {"step": step}
            row.update({k: (float(v) if isinstance(v, (int, float, Tensor)) else v) for k, v in values.items()})
            self.rows.append(row)
            if set(row) <= set(self.keys):  # same columns: append one line
                with open(self.path, "a", newline="") as f:
                    csv.DictWriter(f, fieldnames=self.keys).writerow(row)
            else:  # new columns: rewrite the file with the wider header
                self._write()

        def _write(self) -> None:
            keys: list[str] = []
            for r in self.rows:
                keys += [k for k in r if k not in keys]
            self.keys = keys or ["step"]
            tmp = self.path.with_suffix(".csv.tmp")
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.keys)
                writer.writeheader()
                writer.writerows(self.rows)
            os.replace(tmp, self.path)

    return CSVTracker("symtrain", logging_dir)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        elif isinstance(v, (int, float, str, bool)):
            out[key] = v
        elif v is None:  # TensorBoard's hparams take numbers, strings and booleans only
            out[key] = "none"
        else:
            out[key] = str(v)
    return out


def _aux_modules(model: nn.Module) -> list[nn.Module]:
    """Modules exposing an auxiliary loss of their last forward (``aux_loss()``)."""
    return [m for m in model.modules() if callable(getattr(m, "aux_loss", None))]


def _take(x: Any, n: int) -> Any:
    return tuple(t[:n] for t in x) if isinstance(x, tuple) else x[:n]


class Trainer:
    """Train one recipe. ``Trainer(recipe, out_dir).fit()`` returns the final metrics.

    Args:
        recipe: a resolved :class:`~symtrain.train.config.Recipe`.
        out_dir: the run directory (default ``train.out_dir`` or ``runs/<name>``).
        resume: continue from the last complete checkpoint in ``out_dir`` (a fresh start
            if there is none).
        task: a prebuilt task (the data), to share it between runs.
    """

    def __init__(self, recipe: Recipe, out_dir: str | Path | None = None, resume: bool = False,
                 task: Task | None = None):
        self.recipe = recipe
        self.out = Path(out_dir or recipe.train.out_dir or Path("runs") / recipe.name)
        self.resume = resume
        self._task = task

    # --- set-up ----------------------------------------------------------------------------
    def _accelerator(self):
        from accelerate import Accelerator
        from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration

        t = self.recipe.train
        if t.mixed_precision == "fp16" and not (torch.cuda.is_available() and not t.cpu):
            raise ConfigError("train.mixed_precision: fp16 needs a CUDA device; use bf16 or no")
        trackers = [csv_tracker(self.out)]
        try:
            from accelerate.utils import is_tensorboard_available

            if is_tensorboard_available():
                trackers.append("tensorboard")
        except ImportError:  # pragma: no cover
            pass
        return Accelerator(
            cpu=t.cpu, mixed_precision=t.mixed_precision, gradient_accumulation_steps=t.grad_accum,
            log_with=trackers, project_config=ProjectConfiguration(project_dir=str(self.out),
                                                                   logging_dir=str(self.out)),
            dataloader_config=DataLoaderConfiguration(split_batches=True),
            step_scheduler_with_optimizer=True)

    def _loader(self, data, batch: int, train: bool) -> torch.utils.data.DataLoader:
        # Its own generator: a DataLoader draws a base seed for its workers at every
        # iteration, which would otherwise move the global RNG (and break exact resume).
        kw = dict(batch_size=batch, collate_fn=collate_batch, num_workers=self.recipe.data.num_workers,
                  generator=torch.Generator().manual_seed(self.recipe.train.seed))
        if train:
            sampler = EpochSampler(len(data), self.recipe.train.seed)
            return torch.utils.data.DataLoader(data, sampler=sampler, drop_last=True, **kw)
        return torch.utils.data.DataLoader(data, shuffle=False, **kw)

    def _setup_logging(self, acc) -> None:
        if not acc.is_main_process:
            logger.setLevel(logging.WARNING)  # one process reports progress
        else:
            handler = logging.FileHandler(self.out / "train.log")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            self._handler = handler

    # --- checkpoints -----------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.out / "checkpoints"

    def latest_checkpoint(self) -> Path | None:
        """The last complete checkpoint, from the ``latest.json`` pointer."""
        pointer = self.checkpoint_dir / "latest.json"
        if not pointer.is_file():
            return None
        path = self.checkpoint_dir / json.loads(pointer.read_text())["dir"]
        return path if path.is_dir() else None

    def _save(self, acc, state: TrainState) -> None:
        name = f"step-{state.step:08d}"  # a label for people; the step is read from the state
        final, tmp = self.checkpoint_dir / name, self.checkpoint_dir / f".tmp-{name}"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if acc.is_main_process:
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            pointer = self.checkpoint_dir / "latest.json"
            history = json.loads(pointer.read_text())["history"] if pointer.is_file() else []
            history = [h for h in history if h != name] + [name]
            keep = self.recipe.train.keep_checkpoints
            for old in history[:-keep]:
                shutil.rmtree(self.checkpoint_dir / old, ignore_errors=True)
            ptmp = pointer.with_suffix(".json.tmp")
            ptmp.write_text(json.dumps({"dir": name, "step": state.step, "history": history[-keep:]}))
            os.replace(ptmp, pointer)
            logger.info("checkpoint %s (step %d)", final, state.step)
        acc.wait_for_everyone()

    # --- loss and evaluation -----------------------------------------------------------------
    def _loss(self, model, built: Built, task: Task, x, y, aux: list[nn.Module]) -> tuple[Tensor, dict]:
        if built.augment is not None:
            x, y = built.augment(x, y)
        if built.criterion is not None:
            loss, logs = built.criterion(model, x, y)
            logs = {k: v for k, v in logs.items() if k in ("task_loss", "equivariance_loss")}
        else:
            loss = task.loss(call_model(model, x), y)
            logs = {"task_loss": loss.detach()}
        for m in aux:
            extra = m.aux_loss().to(loss.device, loss.dtype)
            loss = loss + extra
            logs["aux_loss"] = logs.get("aux_loss", 0.0) + extra.detach()
        return loss, logs

    def _check_and_clip(self, acc, model, state: TrainState) -> None:
        """Stop (or skip the step, within ``optim.skip_nonfinite``) on NaN/inf gradients,
        then clip them to ``optim.grad_clip``. The norm is computed once for both."""
        from accelerate.utils import DistributedType

        r = self.recipe
        plain = acc.distributed_type in (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU)
        if r.train.mixed_precision == "fp16" or not plain:
            # fp16 overflows are the grad scaler's business (it skips those steps); FSDP and
            # DeepSpeed shard the gradients: Accelerate clips them
            if r.optim.grad_clip:
                acc.clip_grad_norm_(model.parameters(), r.optim.grad_clip)
            return
        params = [p for p in self._params if p.grad is not None]
        if not params:
            return
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        if not torch.isfinite(norm):
            message = self._bad_gradient(acc, model, state)
            if state.skipped >= r.optim.skip_nonfinite:
                raise TrainingDiverged(f"{message} ({state.skipped} such steps skipped before; "
                                       "optim.skip_nonfinite)")
            state.skipped += 1
            logger.warning("skipped: %s", message)
            for p in params:
                p.grad = None  # the optimizer step then leaves the weights alone
        elif r.optim.grad_clip:
            torch.nn.utils.clip_grads_with_norm_(params, r.optim.grad_clip, norm)

    def _bad_gradient(self, acc, model, state: TrainState) -> str:
        names = [n for n, p in acc.unwrap_model(model).named_parameters()
                 if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
        latest = self.latest_checkpoint()
        return (f"non-finite gradients at step {state.step + 1} (epoch {state.epoch}, batch "
                f"{state.batches}) in {len(names)} parameters, first {names[:3]}; no update was "
                f"applied. Last good checkpoint: {latest if latest is not None else 'none yet'}")

    @torch.no_grad()
    def evaluate(self, acc, model, task: Task, loader, sym, split: str, samples: int | None = None) -> dict:
        """Metrics of the symmetrized model on a split, its equivariance error and (for
        continuous groups) Lie derivatives on the first batch."""
        t = self.recipe.train
        raw = acc.unwrap_model(model)
        saved = self._set_eval_samples(raw, samples)
        model.eval()
        sums: dict[str, list[Tensor]] = {}
        first = None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(t.seed + 12_345)
            for i, (x, y) in enumerate(loader):
                if t.eval_batches is not None and i >= t.eval_batches:
                    break
                if first is None:
                    first = x
                pred = call_model(model, x)
                for name, (num, den) in task.metrics(pred, y).items():
                    num, den = acc.gather_for_metrics((num.float(), den.float()))
                    sums.setdefault(name, []).append(torch.stack([num.sum(), den.sum()]))
            out = {f"{split}/{k}": float(sum(v)[0] / sum(v)[1].clamp_min(1e-12)) for k, v in sums.items()}
            if first is not None:
                out.update(self._equivariance(raw, sym, first, split))
        self._set_eval_samples(raw, saved)
        model.train()
        return out

    def _equivariance(self, model, sym, x, split: str) -> dict:
        from ..metrics import equivariance_error

        s = self.recipe.symmetrization
        x = _take(x, s.equivariance_inputs)
        out = {}
        err = equivariance_error(model, sym, x, samples=s.equivariance_samples)
        out[f"{split}/equivariance_error"] = err.mean
        out[f"{split}/equivariance_error_max"] = err.max
        if s.lie_derivative and not sym.group.is_finite:
            out.update(self._lie(model, sym, x, split))
        return out

    def _lie(self, model, sym, x, split: str) -> dict:
        from ..lie import lie_derivatives

        continuous = [f for f in sym.group.factors if not f.is_finite]
        if len(continuous) == 1 and len(sym.group.factors) > 1:
            # Generators live in the continuous factor; act with it alone.
            sym = type(sym)(continuous[0], input=sym.input, output=sym.output)
        try:
            with torch.enable_grad():
                derivs = lie_derivatives(model, x, "all", symmetry=sym, norm="squared", share_primal=False)
        except Exception as err:  # noqa: BLE001 - a metric must not stop training
            if not getattr(self, "_lie_warned", False):
                reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                logger.info("no Lie derivative for this model (forward-mode AD failed: %s)", reason)
                self._lie_warned = True
            return {}
        out = {f"{split}/lie/{name}": float(v.float().mean()) for name, v in derivs.items()}
        if derivs:
            out[f"{split}/lie_derivative"] = sum(out.values()) / len(derivs)
        return out

    @staticmethod
    def _set_eval_samples(model: nn.Module, samples: int | None):
        """Temporarily change the eval sample count of a wrapper; returns the old one."""
        for attr in ("eval_samples", "samples_eval"):
            if hasattr(model, attr) and samples is not None:
                old = getattr(model, attr)
                setattr(model, attr, samples)
                return old
        return None

    # --- the loop ----------------------------------------------------------------------------
    def _export_weights(self, model: nn.Module) -> None:
        """The trained model's weights as ``model.safetensors`` in the run folder, keyed like
        the model's ``state_dict`` (a plain timm model's file loads with timm's
        ``pretrained_cfg_overlay=dict(file=...)``, e.g. to fine-tune it elsewhere).
        Written to a temporary name and renamed."""
        from safetensors.torch import save_file

        tmp, final = self.out / ".model.safetensors.tmp", self.out / "model.safetensors"
        save_file(_contiguous_state(model), str(tmp))
        os.replace(tmp, final)

    def fit(self) -> dict:
        r, t = self.recipe, self.recipe.train
        from accelerate.utils import set_seed

        task, sym, built = build(r, self._task)
        ckpt_exists = (self.checkpoint_dir / "latest.json").is_file()
        if ckpt_exists and not self.resume:
            raise ConfigError(f"train.out_dir: {self.out} already holds checkpoints; pass --resume to "
                              "continue that run or choose another --out")
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if r.data.batch_size // t.grad_accum % world:
            raise ConfigError(f"data.batch_size: {r.data.batch_size} / grad_accum {t.grad_accum} is "
                              f"not divisible by the {world} processes")
        if len(task.train) < r.data.batch_size // t.grad_accum:
            raise ConfigError(f"data.batch_size: {r.data.batch_size} is larger than the training set "
                              f"({len(task.train)} examples)")
        self.out.mkdir(parents=True, exist_ok=True)
        if t.threads is not None:
            torch.set_num_threads(t.threads)
        acc = self._accelerator()
        self._setup_logging(acc)
        set_seed(t.seed, device_specific=True)
        # Build the trainable model again now that the seed is set, so initial weights
        # depend on the seed only (not on what was built before).
        task, _, built = build(r, task)
        sym = task.symmetry  # measured against the data's symmetry, whatever the wrapper's group
        model = built.model
        criterion = built.criterion
        optimizer = torch.optim.AdamW(param_groups(model if criterion is None else nn.ModuleList([model, criterion]), r),
                                      lr=r.optim.lr, betas=tuple(r.optim.betas), eps=r.optim.eps,
                                      weight_decay=r.optim.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(r))
        micro = r.data.batch_size // t.grad_accum
        eval_batch = r.data.eval_batch_size or r.data.batch_size
        train_loader = self._loader(task.train, micro, train=True)
        val_loader = self._loader(task.val, eval_batch, train=False)
        test_loader = self._loader(task.test, eval_batch, train=False)
        model, optimizer, scheduler, train_loader, val_loader, test_loader = acc.prepare(
            model, optimizer, scheduler, train_loader, val_loader, test_loader)
        if criterion is not None:
            criterion = criterion.to(acc.device)
            built = Built(model, built.augment, criterion)
        state = TrainState()
        acc.register_for_checkpointing(state)

        if acc.is_main_process:
            (self.out / "config.yaml").write_text(yaml.safe_dump(r.to_dict(), sort_keys=False))
        acc.init_trackers(r.name, config=_flat(r.to_dict()))
        tracker = acc.get_tracker("csv", unwrap=True)
        latest = self.latest_checkpoint() if self.resume else None
        if latest is not None:
            acc.load_state(str(latest))
            logger.info("resumed from %s at step %d", latest, state.step)
            if acc.is_main_process:
                tracker.truncate(state.step)
        elif acc.is_main_process and getattr(tracker, "rows", None):
            tracker.truncate(0)
        aux = _aux_modules(acc.unwrap_model(model))
        self._params = [p for p in model.parameters() if p.requires_grad]
        logger.info("training %s: %s, %d steps, %d processes, device %s", r.name, r.symmetrization.method,
                    t.steps, acc.num_processes, acc.device)

        from tqdm.auto import tqdm

        bar = tqdm(total=t.steps, initial=state.step, disable=not (t.progress and acc.is_local_main_process),
                   desc=r.name, dynamic_ncols=True)
        model.train()
        window: dict[str, list[Tensor]] = {}
        last_eval: dict = {}
        start, paused = time.perf_counter(), 0.0
        while state.step < t.steps:
            loader = acc.skip_first_batches(train_loader, state.batches) if state.batches else train_loader
            # Accelerate's loaders pass their own epoch counter to the sampler when iterated:
            # set it (a loader made by skip_first_batches starts from 0).
            loader.set_epoch(state.epoch)
            finished_epoch = True
            for x, y in loader:
                with acc.accumulate(model):
                    loss, logs = self._loss(model, built, task, x, y, aux)
                    global_loss = acc.reduce(loss.detach().float(), reduction="mean")
                    if not torch.isfinite(global_loss):
                        latest = self.latest_checkpoint()
                        raise TrainingDiverged(
                            f"the loss is {float(global_loss)} at step {state.step + 1} (epoch {state.epoch}, "
                            f"batch {state.batches}); no update was applied. Last good checkpoint: "
                            f"{latest if latest is not None else 'none yet'}. Lower optim.lr, set "
                            "optim.grad_clip, or check the data")
                    acc.backward(loss)
                    if acc.sync_gradients:
                        self._check_and_clip(acc, model, state)
                    optimizer.step()  # no-op for a skipped step: the gradients are gone
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                state.batches += 1
                window.setdefault("loss", []).append(global_loss)
                for k, v in logs.items():  # reduced over processes when logged
                    window.setdefault(k, []).append(torch.as_tensor(v, device=acc.device).float())
                if not acc.sync_gradients:
                    continue
                state.step += 1
                bar.update(1)
                if state.step % t.log_every == 0 or state.step == t.steps:
                    values = {f"train/{k}": float(acc.reduce(torch.stack(v).mean(), "mean"))
                              for k, v in window.items()}
                    values["train/lr"] = scheduler.get_last_lr()[0]
                    acc.log(values, step=state.step)
                    bar.set_postfix(loss=f"{values['train/loss']:.4g}", **{
                        k.split("/", 1)[1]: f"{v:.3g}" for k, v in last_eval.items()
                        if k.endswith(task.main_metric) or k.endswith("equivariance_error")})
                    window = {}
                pause = time.perf_counter()
                if state.step % t.eval_every == 0 or state.step == t.steps:
                    last_eval = self.evaluate(acc, model, task, val_loader, sym, "val")
                    acc.log(last_eval, step=state.step)
                    logger.info("step %d: %s", state.step, ", ".join(f"{k}={v:.4g}" for k, v in last_eval.items()))
                if state.step % t.checkpoint_every == 0 or state.step == t.steps:
                    self._save(acc, state)
                paused += time.perf_counter() - pause
                if state.step >= t.steps:
                    finished_epoch = False
                    break
            if finished_epoch:
                state.epoch += 1
                state.batches = 0
        bar.close()
        elapsed = time.perf_counter() - start
        final = {"steps": state.step, "skipped_steps": state.skipped, "seconds": elapsed,
                 "train_loop_seconds": elapsed - paused}
        final.update(self.evaluate(acc, model, task, val_loader, sym, "val"))
        final.update(self.evaluate(acc, model, task, test_loader, sym, "test", r.symmetrization.test_samples))
        acc.log({k: v for k, v in final.items() if k.startswith("test/")}, step=state.step)
        if acc.is_main_process:
            (self.out / "metrics.json").write_text(json.dumps(final, indent=2))
            logger.info("final: %s", json.dumps(final))
            self._export_weights(acc.unwrap_model(model))
        acc.end_training()
        if acc.is_main_process and hasattr(self, "_handler"):
            logger.removeHandler(self._handler)
            self._handler.close()
        self.model = acc.unwrap_model(model)
        return final


def _contiguous_state(model: nn.Module) -> dict:
    return {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}


def train(recipe: Recipe, out_dir: str | Path | None = None, resume: bool = False) -> dict:
    """Train ``recipe`` and return its final metrics (see :class:`Trainer`)."""
    return Trainer(recipe, out_dir, resume).fit()
