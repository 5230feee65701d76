"""Trainer base: the nnU-Net v1 / UNETR++ recipe (SGD + poly LR, Dice+CE with deep supervision, pseudo-Dice EMA,
atomic checkpoints, crash-safe `-c`, DDP). Subclasses in `trainers/` pick the network and recipe changes."""
from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from unetr_pp.io.plans import Plans
from unetr_pp.networks import build_network
from unetr_pp.training import distributed
from unetr_pp.training.checkpoints import (find_resume_checkpoint, load_pretrained_weights, pretrained_report_lines,
                                             read_checkpoint, save_checkpoint)
from unetr_pp.training.data import LoaderSettings, fold_cases, load_or_create_splits, make_loaders
from unetr_pp.training.losses import hard_counts, pseudo_dice
from unetr_pp.training.progress import TrainingLog, empty_plot_stuff, plot_progress
from unetr_pp.training.recipe_hooks import monai_augmenter, recipe_loss, seed_preprocessing_warning
from unetr_pp.training.recipes import check_recipe_choice, check_schedule, resolve_recipe
from unetr_pp.training.schedule import lr_at, set_lr
from unetr_pp.utilities.device import resolve_device
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import save_json

EMA_OLD = 0.9
PRETRAINED_REPORT = "pretrained_weights_report.json"


@dataclass
class TrainingOptions:
    """Run settings from the command line (defaults = the full recipe)."""

    epochs: int = 1000
    iters_per_epoch: int = 250
    val_iters: int = 50
    device: str = "cpu"
    seed: int | None = None
    deterministic: bool = False
    save_every: int = 1
    continue_training: bool = False
    pretrained_weights: Path | None = None
    val_disable_tta: bool = False
    optimizer: str = "sgd"
    num_processes: int | None = None
    amp: bool | None = None
    lr: float | None = None
    lr_schedule: str | None = None
    recipe: str = "nnunet"

    def __post_init__(self) -> None:
        for name in ("epochs", "iters_per_epoch", "val_iters", "save_every"):
            if int(getattr(self, name)) < 1:
                raise UnetrPPError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.lr is not None and not self.lr > 0:
            raise UnetrPPError(f"--lr must be a number > 0, got {self.lr}")
        if self.lr_schedule is not None:
            check_schedule(self.lr_schedule)
        check_recipe_choice(self.recipe)


@dataclass
class FoldSetup:
    """Where a fold's data and results live."""

    task: str
    fold: str
    configuration: str
    plans_identifier: str
    plans: Plans
    task_folder: Path
    data_folder: Path
    output_folder: Path


class Trainer:
    """nnU-Net v1 / UNETR++ training recipe; subclasses set `name`, `network_name` and recipe changes."""

    name: ClassVar[str] = "base"
    network_name: ClassVar[str] = "nnunet"
    preset: ClassVar[str | None] = None
    optimizers: ClassVar[tuple[str, ...]] = ("sgd",)
    initial_lr: ClassVar[float] = 1e-2
    momentum: ClassVar[float] = 0.99
    weight_decay: ClassVar[float] = 3e-5
    adamw_lr: ClassVar[float] = 1e-4
    adamw_weight_decay: ClassVar[float] = 1e-5
    grad_clip: ClassVar[float] = 12.0
    oversample_foreground_percent: ClassVar[float] = 0.33
    amp_default: ClassVar[bool] = True
    deep_supervision_mask_lowest: ClassVar[bool] = False
    seed_recipe: ClassVar[str | None] = None

    def __init__(self, setup: FoldSetup, options: TrainingOptions) -> None:
        if options.recipe == "nnunet" and options.optimizer not in self.optimizers:
            raise UnetrPPError(f"trainer {self.name} supports --optimizer {' / '.join(self.optimizers)}, "
                               f"not {options.optimizer!r}")
        self.options = options
        self.device = resolve_device(options.device)
        self.dist = distributed.setup(self.device)
        self.setup = setup
        self.plans = self.prepare_plans(setup.plans, setup.configuration)
        self.config = self.plans.configuration(setup.configuration)
        self.regions = self.plans.is_region_task
        self.output_folder = setup.output_folder
        self.log = TrainingLog(self.output_folder if self.dist.is_main else None, echo=self.dist.is_main)
        self.recipe = resolve_recipe(options.recipe, self.seed_recipe, self.name, self.regions)
        self.seed_run = options.recipe == "seed"
        self.amp = use_amp(self.device, options.amp, self.recipe.amp if self.seed_run else self.amp_default)
        self.epoch = 0
        self.plot_stuff = empty_plot_stuff()
        self.best_stuff: dict[str, Any] = {"best_ema": None, "best_epoch": None, "ema": None}
        self.network: nn.Module | None = None

    # ----- recipe hooks (subclasses override) -----
    def prepare_plans(self, plans: Plans, configuration: str) -> Plans:
        """The plans this trainer trains with (preset trainers apply their preset here)."""
        return plans

    def build_network(self) -> nn.Module:
        """The registry network `network_name` for this configuration, deep supervision on."""
        return build_network(self.network_name, self.config, deep_supervision=self.recipe.deep_supervision)

    def configure_optimizer(self, parameters) -> torch.optim.Optimizer:
        """SGD lr 1e-2, Nesterov momentum 0.99, weight decay 3e-5 (or AdamW where the trainer offers it);
        `--recipe seed`: the seed recipe's optimizer and weight decay. `--lr` replaces the learning rate."""
        if self.seed_run and self.recipe.optimizer == "adamw":
            return torch.optim.AdamW(parameters, lr=self.base_lr, weight_decay=self.recipe.weight_decay)
        if not self.seed_run and self.options.optimizer == "adamw":
            return torch.optim.AdamW(parameters, lr=self.base_lr, weight_decay=self.adamw_weight_decay)
        return torch.optim.SGD(parameters, lr=self.base_lr, momentum=self.momentum, nesterov=True,
                               weight_decay=self.weight_decay)

    @property
    def base_lr(self) -> float:
        """Learning rate at epoch 0: `--lr`, else the seed recipe's, else the chosen optimizer's."""
        if self.options.lr is not None:
            return self.options.lr
        if self.seed_run:
            return self.recipe.lr
        return self.adamw_lr if self.options.optimizer == "adamw" else self.initial_lr

    @property
    def lr_schedule(self) -> str:
        """`--lr_schedule`, else the recipe's (poly for the common recipe)."""
        return self.options.lr_schedule or self.recipe.schedule

    @property
    def global_batch_size(self) -> int:
        """The plans' batch size, or the seed recipe's crops per volume (batch 1 volume x N crops)."""
        crops = self.recipe.crops_per_volume if self.seed_run else None
        return crops or self.config.batch_size

    @property
    def recipe_oversample(self) -> float:
        """Foreground share of a batch: the trainer's (0.33) or the seed recipe's (MONAI pos=1, neg=1: 0.5)."""
        return self.recipe.oversample_foreground_percent if self.seed_run else self.oversample_foreground_percent

    def build_loss(self, n_outputs: int) -> nn.Module:
        """The recipe's loss, wrapped for deep supervision (nnU-Net batch-Dice rule and DS mask)."""
        return recipe_loss(self.recipe, self.regions, self.setup.configuration, list(self.plans.configurations),
                           n_outputs, self.deep_supervision_mask_lowest, self.dist.enabled)

    def _clip(self) -> None:
        clip = self.recipe.grad_clip if self.seed_run else self.grad_clip
        if clip is not None:
            nn.utils.clip_grad_norm_(self.network.parameters(), clip)

    # ----- setup -----
    def _seed(self) -> int:
        seed = self.options.seed
        if seed is None:
            seed = 0 if self.options.deterministic else int.from_bytes(os.urandom(4), "little") % 2 ** 31
        if self.options.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        else:
            torch.backends.cudnn.benchmark = True
        random.seed(seed)
        np.random.seed(seed % 2 ** 32)
        torch.manual_seed(seed)
        return seed

    def sidecar(self) -> dict[str, Any]:
        """What the predictor needs to rebuild the network, and what `-c` checks."""
        s = self.setup
        return {"trainer": self.name, "network": self.network_name, "configuration": s.configuration,
                "plans_identifier": s.plans_identifier, "task": s.task, "fold": s.fold, "plans": self.plans.to_json()}

    def _prepare_fold(self) -> None:
        """Seed, split and network (shared by training and `--val`)."""
        self.seed = self._seed()
        case_ids = sorted(p.name[:-len(".json")] for p in self.setup.data_folder.glob("*.json"))
        if not case_ids:
            raise UnetrPPError(f"{self.setup.data_folder}: no preprocessed cases; run "
                               f"unetr_pp_plan_and_preprocess -t {self.setup.task}")
        if self.setup.fold == "all":
            self.train_ids, self.val_ids = list(case_ids), list(case_ids)
        else:
            splits = load_or_create_splits(self.setup.task_folder, case_ids, self.plans.preset_splits)
            self.train_ids, self.val_ids = fold_cases(splits, self.setup.fold, case_ids)
        self.network = self.build_network().to(self.device)

    def initialize(self) -> None:
        """Seed, split, network, optimizer, loss, loaders; resume (`-c`) or load pretrained weights."""
        self._prepare_fold()
        self.optimizer = self.configure_optimizer(self.network.parameters())
        self.grad_scaler = torch.amp.GradScaler("cuda") if self.amp else None
        scales = list(self.network.deep_supervision_scales) if self.recipe.deep_supervision else [(1.0, 1.0, 1.0)]
        self.loss = self.build_loss(len(scales))
        if self.dist.is_main:
            for stale in self.output_folder.glob(".model_*.model.*.tmp"):
                self.log(f"removing {stale.name}, left by an interrupted checkpoint write")
                stale.unlink()
        if self.options.continue_training:
            self._resume()
        elif self.options.pretrained_weights is not None:
            report = load_pretrained_weights(self.network, Path(self.options.pretrained_weights))
            self.log("\n".join(pretrained_report_lines(report)))
            if self.dist.is_main:
                save_json(report, self.output_folder / PRETRAINED_REPORT)
                self.log(f"pretrained weights report: {self.output_folder / PRETRAINED_REPORT}")
        self.model = self.network
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.network, device_ids=ids)
        settings = LoaderSettings(
            patch_size=self.config.patch_size,
            batch_size=distributed.rank_batch_size(self.global_batch_size, self.dist),
            deep_supervision_scales=scales,
            oversample_foreground_percent=distributed.rank_oversample_percent(
                self.global_batch_size, self.recipe_oversample, self.dist),
            augmentation="nnunet" if self.recipe.augmentation == "nnunet" else "none",
            num_processes=self.options.num_processes,
            seed=self.seed + 7919 * self.epoch, rank=self.dist.rank,
            regions=self.plans.region_label_sets)
        self.train_loader, self.val_loader = make_loaders(self.setup.data_folder, self.train_ids, self.val_ids,
                                                          self.config, settings)
        self.augment = monai_augmenter(self.recipe, self.seed, self.dist.rank, self.config.patch_size)
        self._log_setup(settings)

    def _log_setup(self, settings: LoaderSettings) -> None:
        params = sum(p.numel() for p in self.network.parameters())
        self.log(f"trainer {self.name} (network {self.network_name}), task {self.setup.task}, fold {self.setup.fold}, "
                 f"configuration {self.setup.configuration}, plans {self.setup.plans_identifier}")
        self.log(f"device {self.device}, AMP {self.amp}, processes {self.dist.world_size}, seed {self.seed}, "
                 f"deterministic {self.options.deterministic}, optimizer {type(self.optimizer).__name__} lr {self.base_lr}")
        self.log(f"recipe {self.recipe.name} ({self.recipe.source}), lr schedule {self.lr_schedule}")
        warning = seed_preprocessing_warning(self.recipe, self.config) if self.seed_run else None
        if warning:
            self.log(warning)
        self.log(f"patch {list(settings.patch_size)}, batch {self.global_batch_size} "
                 f"({settings.batch_size} per process), deep supervision scales {settings.deep_supervision_scales}")
        self.log(f"network parameters {params:,}; {len(self.train_ids)} training / "
                 f"{len(self.val_ids)} validation cases")
        self.log(f"loss {type(self.loss.loss).__name__} ({'sigmoid, regions' if self.regions else 'softmax, labels'}), "
                 f"batch Dice {getattr(self.loss.loss, 'batch_dice', False)}, "
                 f"deep supervision weights {[round(w, 3) for w in self.loss.weights]}")
        self.log(f"options {json.dumps(asdict(self.options), default=str)}")
        self.log(f"plans {json.dumps(self.config.to_json())}")

    # ----- checkpoints -----
    def checkpoint_content(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimizer, grad scaler, history, best, RNG states."""
        rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
               "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None}
        return {"epoch": self.epoch, "state_dict": self.network.state_dict(),
                "optimizer_state_dict": self.optimizer.state_dict(), "lr_scheduler_state_dict": None,
                "amp_grad_scaler": self.grad_scaler.state_dict() if self.grad_scaler else None,
                "plot_stuff": self.plot_stuff, "best_stuff": self.best_stuff, "rng_state": rng,
                "init_args": {"options": asdict(self.options), "seed": self.seed}}

    def save(self, name: str) -> None:
        """Write `<name>.model` + sidecar (rank 0 only)."""
        if self.dist.is_main:
            save_checkpoint(self.output_folder / f"{name}.model", self.checkpoint_content(), self.sidecar())

    def _resume(self) -> None:
        found, skipped = find_resume_checkpoint(self.output_folder, self.sidecar())
        for message in skipped:
            self.log(f"WARNING: damaged checkpoint skipped: {message}")
        if found is None:
            raise UnetrPPError(f"{self.output_folder}: -c given but no valid checkpoint to continue from")
        content = found.content
        self.network.load_state_dict(content["state_dict"])
        if content["optimizer_state_dict"] is not None:  # None in imported released checkpoints
            self.optimizer.load_state_dict(content["optimizer_state_dict"])
        if self.grad_scaler is not None and content["amp_grad_scaler"] is not None:
            self.grad_scaler.load_state_dict(content["amp_grad_scaler"])
        self.epoch = int(content["epoch"])
        self.plot_stuff = {k: list(v) for k, v in content["plot_stuff"].items()}
        self.best_stuff = dict(content["best_stuff"])
        rng = content["rng_state"]
        if rng is not None:
            torch.set_rng_state(rng["torch"])
            np.random.set_state(rng["numpy"])
            random.setstate(rng["python"])
            if rng.get("cuda") is not None and self.device.type == "cuda":
                torch.cuda.set_rng_state_all(rng["cuda"])
        self.log(f"continuing from {found.path.name} at epoch {self.epoch}")

    # ----- steps -----
    def _to_device(self, batch: dict) -> tuple[torch.Tensor, list[torch.Tensor]]:
        data = batch["data"].to(self.device, non_blocking=True)
        return data, [t.to(self.device, non_blocking=True) for t in batch["target"]]

    def train_step(self, batch: dict) -> float:
        """One optimizer step on a batch -> loss value."""
        data, targets = self._to_device(self.augment(batch) if self.augment else batch)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, enabled=self.amp):
            loss = self.loss(self.model(data), targets)
        if self.grad_scaler is not None:
            self.grad_scaler.scale(loss).backward()
            self.grad_scaler.unscale_(self.optimizer)
            self._clip()
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            loss.backward()
            self._clip()
            self.optimizer.step()
        return float(loss.detach())

    def validation_step(self, batch: dict) -> tuple[float, torch.Tensor]:
        """Full-resolution loss and hard TP/FP/FN (3, K') on a validation batch (network in eval mode)."""
        data, targets = self._to_device(batch)
        with torch.no_grad(), torch.autocast(self.device.type, enabled=self.amp):
            logits = self.network(data)
            loss = self.loss(logits, targets)
        return float(loss), hard_counts(logits, targets[0], self.regions)

    def _mean_over_ranks(self, values: list[float]) -> float:
        total = distributed.all_reduce_sum(torch.tensor([sum(values), len(values)], dtype=torch.float64,
                                                        device=self._reduce_device), self.dist)
        return float(total[0] / total[1])

    @property
    def _reduce_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    # ----- loop -----
    def run_epoch(self) -> None:
        """Train `iters_per_epoch` steps, validate `val_iters` batches, update history/EMA, save checkpoints."""
        start = time.time()
        lr = lr_at(self.lr_schedule, self.epoch, self.options.epochs, self.base_lr, self.recipe.warmup_epochs)
        set_lr(self.optimizer, lr)
        self.model.train()
        bar = tqdm(range(self.options.iters_per_epoch), desc=f"epoch {self.epoch}", unit="it",
                   disable=not self.dist.is_main, leave=False)
        train_losses = [self.train_step(next(self.train_loader)) for _ in bar]
        self.network.eval()
        val_losses, counts = [], None
        for _ in range(self.options.val_iters):
            loss, batch_counts = self.validation_step(next(self.val_loader))
            val_losses.append(loss)
            counts = batch_counts if counts is None else counts + batch_counts
        counts = distributed.all_reduce_sum(counts.to(self._reduce_device), self.dist).cpu()
        dice, per_class = pseudo_dice(counts)
        ema = self.best_stuff["ema"]
        if dice == dice:
            ema = dice if ema is None else EMA_OLD * ema + (1 - EMA_OLD) * dice
        self.best_stuff["ema"] = ema
        self.epoch += 1
        history = {"train_loss": self._mean_over_ranks(train_losses), "val_loss": self._mean_over_ranks(val_losses),
                   "pseudo_dice": dice, "ema_pseudo_dice": ema, "lr": lr, "epoch_time": time.time() - start}
        for key, value in history.items():
            self.plot_stuff[key].append(value)
        self.log(f"epoch {self.epoch}/{self.options.epochs}: train loss {history['train_loss']:.4f}, "
                 f"val loss {history['val_loss']:.4f}, pseudo Dice {dice:.4f} "
                 f"(per class {[round(d, 4) for d in per_class]}), EMA {fmt_metric(ema)}, lr {lr:.6f}, "
                 f"epoch time {history['epoch_time']:.1f} s")
        self._save_epoch(ema)

    def _save_epoch(self, ema: float | None) -> None:
        best = self.best_stuff["best_ema"]
        if ema is not None and (best is None or ema > best):
            self.best_stuff.update(best_ema=ema, best_epoch=self.epoch)
            self.log(f"new best EMA pseudo Dice {ema:.4f}")
            self.save("model_best")
        if self.epoch % self.options.save_every == 0 and self.epoch < self.options.epochs:
            self.save("model_latest")
        if self.dist.is_main:
            plot_progress(self.plot_stuff, self.output_folder / "progress.png")

    def run_training(self) -> None:
        """Train up to `epochs`, save model_final_checkpoint (model_latest removed); every rank waits for the others."""
        try:
            while self.epoch < self.options.epochs:
                self.run_epoch()
            self.save("model_final_checkpoint")
            if self.dist.is_main:
                (self.output_folder / "model_latest.model").unlink(missing_ok=True)
                (self.output_folder / "model_latest.model.json").unlink(missing_ok=True)
        finally:
            self.close()
        distributed.barrier(self.dist)

    def load_final_for_validation(self) -> None:
        """`--val` alone: seed, split, network with the weights of model_final_checkpoint."""
        self._prepare_fold()
        path = self.output_folder / "model_final_checkpoint.model"
        if not path.is_file():
            raise UnetrPPError(f"{path}: not found; train the fold first (or continue it with -c)")
        self.network.load_state_dict(read_checkpoint(path).content["state_dict"])

    def release_training_state(self) -> None:
        """Free what only training needs (optimizer state, gradients) once the final checkpoint is written.

        The final validation can then reuse that memory instead of growing the process beyond it.
        """
        optimizer = getattr(self, "optimizer", None)
        if optimizer is not None:
            optimizer.state.clear()
        if self.network is not None:
            self.network.zero_grad(set_to_none=True)

    def close(self) -> None:
        """Stop the data loader workers."""
        for loader in (getattr(self, "train_loader", None), getattr(self, "val_loader", None)):
            if loader is not None:
                loader.close()


def use_amp(device: torch.device, requested: bool | None, default: bool) -> bool:
    """Mixed precision: only on CUDA; `--amp/--no_amp` when given, else the trainer's seed default."""
    return device.type == "cuda" and (default if requested is None else requested)


def fmt_metric(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
