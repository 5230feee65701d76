"""Write released_layouts.json: the state_dict layout ([key, shape] in order) of each seed's released checkpoint,
from the modules of tests/released_fakes.py (re-created from the public code) at the seeds' settings.

Run from the repository root: PYTHONPATH=.:tests python tests/data/reference/make_released_layouts.py
"""
import json
from pathlib import Path

import torch
from monai.networks.nets import UNETR, SwinUNETR
from released_fakes import public_ux_model

SOURCES = {
    "uxnet": ("MASILab/3DUX-Net networks/UXNet_3D (UXNET, FLARE: 5 outputs)", lambda: public_ux_model("uxnet", 5)),
    "repuxnet": ("MASILab/deform-uxnet networks/RepUXNet_3D (REPUXNET ks 21, AMOS: 16 outputs)",
                 lambda: public_ux_model("repuxnet", 16)),
    "deformuxnet": ("MASILab/deform-uxnet networks/DeformUXNet_3D (DEFORMUXNET, FLARE: 5 outputs)",
                    lambda: public_ux_model("deformuxnet", 5)),
    "unetr": ("Project-MONAI/research-contributions UNETR/BTCV (MONAI UNETR 96^3, 14 outputs)",
              lambda: UNETR(1, 14, (96, 96, 96), feature_size=16, hidden_size=768, mlp_dim=3072, num_heads=12,
                            proj_type="perceptron", norm_name="instance", res_block=True)),
    "swin_unetr": ("Project-MONAI/research-contributions SwinUNETR/BTCV (MONAI SwinUNETR feature 48, 14 outputs)",
                   lambda: SwinUNETR(in_channels=1, out_channels=14, feature_size=48)),
}


def main() -> None:
    out = {"description": "Key names and shapes of the seeds' released checkpoints (see make_released_layouts.py); "
                          "swin_vit_ssl is model_swinvit.pt: the SwinViT encoder under a DDP 'module.' prefix.",
           "layouts": {}}
    for name, (origin, make) in SOURCES.items():
        with torch.device("cpu" if name == "swin_unetr" else "meta"):  # SwinUNETR calls .item() while building
            model = make()
        # the BTCV files were written with MONAI 0.x, whose transformer blocks had no cross-attention norm
        keys = [(k, v) for k, v in model.state_dict().items() if ".norm_cross_attn." not in k]
        out["layouts"][name] = {"derived_from": origin, "state_dict": [[k, list(v.shape)] for k, v in keys]}
        if name == "swin_unetr":
            out["layouts"]["swin_vit_ssl"] = {
                "derived_from": "Project-MONAI/research-contributions SwinUNETR/Pretrain (SSLHead.swinViT, DDP)",
                "state_dict": [[f"module.{k}", list(v.shape)] for k, v in model.swinViT.state_dict().items()]}
    target = Path(__file__).with_name("released_layouts.json")
    blocks = []
    for name, layout in out["layouts"].items():  # one [key, shape] per line
        entries = ",\n".join("    " + json.dumps(entry) for entry in layout["state_dict"])
        blocks.append(f'  {json.dumps(name)}: {{"derived_from": {json.dumps(layout["derived_from"])}, '
                      f'"state_dict": [\n{entries}\n  ]}}')
    text = '{"description": ' + json.dumps(out["description"]) + ',\n "layouts": {\n' + ",\n".join(blocks) + "\n}}"
    assert json.loads(text) == out
    target.write_text(text + "\n")


if __name__ == "__main__":
    main()
