"""All four official UNETR++ probes through unetr_pp_import_model: official-layout file + v1 pkl -> CLI ->
load_trained_model -> probe input -> compared with the stored official output.

Run from the repository root: PYTHONPATH=.:tests python bench/check_import_probes.py (a few minutes, ~2 GB).
"""
import json
import os
import tempfile
from pathlib import Path

import test_import_model as t
import torch

CASES = {"synapse": ("unetr_pp_trainer_synapse", 13, 1), "acdc": ("unetr_pp_trainer_acdc", 3, 1),
         "lung": ("unetr_pp_trainer_lung", 1, 1), "tumor": ("unetr_pp_trainer_tumor", 3, 4)}


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    os.environ["RESULTS_FOLDER"] = str(tmp / "r")
    for dataset, (trainer, classes, modalities) in CASES.items():
        source = t.write_official(tmp / dataset, dataset, trainer, classes, "", modalities)
        t.probe_weights.cache_clear()
        assert t.import_main([str(source), "-t", t.TASK, "-tr", trainer, "-f", "0"]) == 0
        folder = tmp / "r" / "unetr_pp" / "3d_fullres" / t.TASK / f"{trainer}__unetr_pp_Plansv2.1"
        net = t.load_trained_model(folder, ["0"]).networks[0]
        ref = json.loads((t.REFERENCE / f"unetr_pp_official_{dataset}_probe.json").read_text())
        with torch.no_grad():
            out = net(t.probe.probe_input(ref["input_shape"]))
        got, exp = t.probe.probe_summary([out])[0], ref["eval_full"][0]
        keys = ("mean", "std", "abs_max")
        dev = max(abs(a - b) for a, b in zip(got["values"] + [got[k] for k in keys],
                                             exp["values"] + [exp[k] for k in keys]))
        print(f"{dataset}: max |ours - official| / abs_max = {dev / exp['abs_max']:.2e} "
              f"(tolerance {ref['rel_tolerance']:.0e})", flush=True)


if __name__ == "__main__":
    main()
