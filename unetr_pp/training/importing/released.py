"""`unetr_pp_import_model`: a released checkpoint ->
`$RESULTS_FOLDER/unetr_pp/<config>/<task>/<trainer>__<plans>/fold_<k>/` holding `<name>.model` (our
checkpoint format) + `.model.json` sidecar (with the plans) + `import_report.json`.

The fold folder is built in a temporary folder beside it and renamed into place, so an error leaves nothing.
An official UNETR++ file already at the target path (where the UNETR++ README puts it) is imported in place:
its weights already have our key names, so only the sidecar and the report are added; the file is not touched.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from unetr_pp.io.plans import Configuration, Plans
from unetr_pp.networks import build_network
from unetr_pp.networks.official import OFFICIAL_CONFIGS, _matching_datasets
from unetr_pp.networks.repuxnet import reparameterize
from unetr_pp.paths import DEFAULT_PLANS_IDENTIFIER, results_folder
from unetr_pp.training.checkpoints import save_checkpoint
from unetr_pp.training.importing.keymaps import SourceLayout, read_released, rename_keys, source_layout
from unetr_pp.training.importing.networks import parameter_count, settings
from unetr_pp.training.importing.plans import seed_dataset_for, seed_plans, task_plans
from unetr_pp.training.importing.v1_plans import convert_v1_plans, read_model_pkl
from unetr_pp.training.progress import empty_plot_stuff
from unetr_pp.utilities.errors import UnetrPPError
from unetr_pp.utilities.files import save_json

CONFIGURATION = "3d_fullres"
REPORT_NAME = "import_report.json"


@dataclass
class ImportOptions:
    """What `unetr_pp_import_model` was asked to do."""

    checkpoint: Path
    task: str
    trainer: str
    fold: str
    configuration: str = CONFIGURATION
    preset: str | None = None
    source: str | None = None
    name: str = "model_final_checkpoint"
    plans_identifier: str = DEFAULT_PLANS_IDENTIFIER
    fold_reparam: bool = False


def _unetr_pp_plans(opts: ImportOptions, sd: dict, outputs: int) -> Plans:
    pkl = opts.checkpoint.with_name(opts.checkpoint.name + ".pkl")
    if pkl.is_file():
        return convert_v1_plans(read_model_pkl(pkl), pkl, opts.plans_identifier, outputs)
    preset = opts.preset
    if preset is None:
        fits = _matching_datasets(sd, outputs)
        if not fits:
            raise UnetrPPError(f"{opts.checkpoint}: UNETR++ weights that fit none of the official configurations "
                               f"({', '.join(OFFICIAL_CONFIGS)}); give --preset or the .model.pkl")
        preset = fits[0]
    if preset not in OFFICIAL_CONFIGS:
        raise UnetrPPError(f"--preset {preset!r}: a UNETR++ checkpoint needs one of {', '.join(OFFICIAL_CONFIGS)}")
    return task_plans(opts.task, opts.plans_identifier, preset, outputs)


def build_plans(opts: ImportOptions, layout: SourceLayout, sd: dict) -> Plans:
    """The plans of the imported model (UNETR++: pkl or task + preset; the others: their seed's preprocessing)."""
    kwargs, inputs, outputs, patch = settings(layout.network, sd)
    if layout.network == "unetr_pp":
        return _unetr_pp_plans(opts, sd, outputs)
    dataset = seed_dataset_for(layout.name, outputs, opts.preset, opts.checkpoint)
    return seed_plans(dataset, layout.network, kwargs, inputs, outputs, opts.plans_identifier, patch)


def _fit_hint(layout: SourceLayout, sd: dict, config: Configuration) -> str:
    if layout.network != "unetr_pp":
        return ""
    variant = config.network_kwargs["unetr_pp"]["variant"]
    others = [d for d in _matching_datasets(sd, config.num_classes) if d != variant]
    return f"; it fits the official {others[0]!r} configuration" if others else ""


def load_network(opts: ImportOptions, layout: SourceLayout, sd: dict, plans: Plans) -> nn.Module:
    """Our network for the plans with the file's weights (every non-optional key present, shapes equal)."""
    config = plans.configuration(CONFIGURATION)
    network = build_network(layout.network, config, deep_supervision=False)
    expected = {k: tuple(v.shape) for k, v in network.state_dict().items()}
    problems = [f"missing key {k}" for k in expected if k not in sd and not layout.is_optional(k)]
    problems += [f"unexpected key {k}" for k in sd if k not in expected]
    problems += [f"shape of {k}: file {list(v.shape)} vs network {list(expected[k])}"
                 for k, v in sd.items() if k in expected and tuple(v.shape) != expected[k]]
    if problems:
        what = f"{layout.network} ({dict(config.network_kwargs.get(layout.network, {}))}, {config.num_classes} outputs)"
        raise UnetrPPError(f"{opts.checkpoint}: weights do not fit the expected {what}"
                           f"{_fit_hint(layout, sd, config)} ({len(problems)} differences, first: {problems[0]})")
    missing, _ = network.load_state_dict(sd, strict=False)
    if any(not layout.is_optional(k) for k in missing):
        raise UnetrPPError(f"{opts.checkpoint}: keys missing after loading: {missing[:5]}")
    return network.eval()


def _checkpoint_content(network: nn.Module, epoch: int) -> dict:
    return {"epoch": epoch, "state_dict": network.state_dict(), "optimizer_state_dict": None,
            "lr_scheduler_state_dict": None, "amp_grad_scaler": None, "plot_stuff": empty_plot_stuff(),
            "best_stuff": {"best_ema": None, "best_epoch": None, "ema": None}, "rng_state": None}


def fold_folder(opts: ImportOptions) -> Path:
    """`$RESULTS_FOLDER/unetr_pp/<configuration>/<task>/<trainer>__<plans_identifier>/fold_<fold>`."""
    model = results_folder() / opts.configuration / opts.task / f"{opts.trainer}__{opts.plans_identifier}"
    return model / f"fold_{opts.fold}"


def _in_place(opts: ImportOptions, target: Path) -> bool:
    return opts.checkpoint.resolve() == (target / f"{opts.name}.model").resolve()


def _write_in_place(opts: ImportOptions, target: Path, released_keys: set, network: nn.Module, sidecar: dict,
                    report: dict, epoch: int) -> None:
    if released_keys != set(network.state_dict()) or opts.fold_reparam:
        raise UnetrPPError(f"{opts.checkpoint}: importing in place needs weights with our key names; import it from "
                           "another folder instead (the fold folder is written fresh)")
    save_json(report, target / REPORT_NAME)
    save_json({**sidecar, "epoch": epoch}, target / f"{opts.name}.model.json")


def _write_fresh(opts: ImportOptions, target: Path, network: nn.Module, sidecar: dict, report: dict,
                 epoch: int) -> None:
    if target.exists():
        raise UnetrPPError(f"{target} already exists; remove it or import under another -tr/-f (nothing written)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.import-", dir=target.parent))
    try:
        save_checkpoint(tmp / f"{opts.name}.model", _checkpoint_content(network, epoch), sidecar)
        save_json(report, tmp / REPORT_NAME)
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def import_model(opts: ImportOptions) -> tuple[Path, dict]:
    """Import `opts.checkpoint`; returns (fold folder, import report)."""
    if opts.configuration != CONFIGURATION:
        raise UnetrPPError(f"-c {opts.configuration}: released checkpoints are {CONFIGURATION} networks")
    released = read_released(opts.checkpoint)
    layout = source_layout(opts.source, released.state_dict, opts.checkpoint)
    if layout.encoder_only:
        raise UnetrPPError(f"{opts.checkpoint}: a {layout.network} encoder only (self-supervised pre-training), not a "
                           "segmentation model; fine-tune from it with unetr_pp_train --pretrained_weights")
    sd = rename_keys(released.state_dict, layout)
    plans = build_plans(opts, layout, sd)
    network = load_network(opts, layout, sd, plans)
    if opts.fold_reparam:
        if layout.network != "repuxnet":
            raise UnetrPPError(f"--fold_reparam applies to RepUX-Net checkpoints, not {layout.network}")
        reparameterize(network, fold_bn=True)
        config = plans.configuration(CONFIGURATION).to_json()
        config["network_kwargs"]["repuxnet"]["reparameterized"] = True
        plans = plans.with_configuration(Configuration.from_json(CONFIGURATION, config))
    epoch = released.content.get("epoch")
    epoch = epoch if isinstance(epoch, int) else 0
    sidecar = {"trainer": opts.trainer, "network": layout.network, "configuration": opts.configuration,
               "plans_identifier": opts.plans_identifier, "task": opts.task, "fold": opts.fold, "plans": plans.to_json()}
    report = {"file": str(opts.checkpoint), "source": layout.name, "torchscript": released.torchscript,
              "network": layout.network, "tensors": len(sd), "values": parameter_count(sd),
              "network_kwargs": plans.configuration(CONFIGURATION).to_json()["network_kwargs"],
              "plans_from": plans.preset, "fold_reparam": opts.fold_reparam}
    target = fold_folder(opts)
    if _in_place(opts, target):
        _write_in_place(opts, target, set(released.state_dict), network, sidecar, report, epoch)
    else:
        _write_fresh(opts, target, network, sidecar, report, epoch)
    return target, report
