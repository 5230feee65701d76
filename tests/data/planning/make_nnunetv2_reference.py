"""Expected planner outputs from nnU-Net v2 itself (needs nnunetv2 + dynamic_network_architectures; not a test).

The planner is called on fingerprints without a dataset folder by filling the ExperimentPlanner
constants of nnU-Net v2 2.8.1 by hand (8 GB target, reference value 560e6 at batch size 2).
"""
import json, sys, numpy as np
from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
from nnunetv2.preprocessing.resampling.default_resampling import compute_new_shape
from dynamic_network_architectures.architectures.unet import PlainConvUNet

def make(fp, labels, channels, n):
    p = object.__new__(ExperimentPlanner)
    # replicate __init__ constants
    p.suppress_transpose=False; p.anisotropy_threshold=3
    p.UNet_base_num_features = 32; p.UNet_class = PlainConvUNet
    p.UNet_reference_val_3d = 560000000; p.UNet_reference_val_2d = 85000000
    p.UNet_reference_com_nfeatures = 32; p.UNet_reference_val_corresp_GB = 8
    p.UNet_reference_val_corresp_bs_2d = 12; p.UNet_reference_val_corresp_bs_3d = 2
    p.UNet_featuremap_min_edge_length = 4
    p.UNet_blocks_per_stage_encoder = (2,)*14; p.UNet_blocks_per_stage_decoder = (2,)*13
    p.UNet_min_batch_size = 2; p.UNet_max_features_2d = 512; p.UNet_max_features_3d = 320
    p.max_dataset_covered = 0.05; p.UNet_vram_target_GB = 8; p.lowres_creation_threshold = 0.25
    p.preprocessor_name='DefaultPreprocessor'; p.plans_identifier='x'; p.overwrite_target_spacing=None
    p.dataset_fingerprint = dict(fp, median_relative_size_after_cropping=1.0)
    p.dataset_json = {'channel_names': channels, 'labels': labels, 'numTraining': n}
    return p

def run(fp, labels, channels):
    n = len(fp['spacings'])
    p = make(fp, labels, channels, n)
    tf, tb = p.determine_transpose()
    sp = p.determine_fullres_target_spacing()
    new_shapes = [compute_new_shape(j, i, sp) for i, j in zip(fp['spacings'], fp['shapes_after_crop'])]
    med = np.median(new_shapes, 0)[tf]
    nvox = float(np.prod(med, dtype=np.float64) * n)
    plan = p.get_plans_for_configuration(sp[tf], med, 'x', nvox, {})
    ak = plan['architecture']['arch_kwargs']
    net = PlainConvUNet(1, ak['n_stages'], ak['features_per_stage'], __import__('torch').nn.Conv3d, ak['kernel_sizes'], ak['strides'], ak['n_conv_per_stage'], len(labels), ak['n_conv_per_stage_decoder'])
    return {'transpose': [int(i) for i in tf], 'spacing': [float(v) for v in sp[tf]], 'patch': [int(v) for v in plan['patch_size']],
            'batch': int(plan['batch_size']), 'strides': [list(map(int, s)) for s in ak['strides']],
            'kernels': [list(map(int, s)) for s in ak['kernel_sizes']], 'median_shape': [float(v) for v in med],
            'fmap': int(net.compute_conv_feature_map_size(plan['patch_size']))}

if __name__ == '__main__':
    # regenerate the expected values: python make_nnunetv2_reference.py nnunetv2_planner_reference.json
    path = sys.argv[1]
    ref = json.load(open(path))
    for case in ref['cases']:
        case['nnunetv2'] = run(case['fingerprint'], case['labels'], case['channel_names'])
    json.dump(ref, open(path, 'w'), indent=1)
