"""Image reading/writing (SimpleITK) and raw task intake (dataset.json v1 and v2, case listing)."""
from unetr_pp.io.dataset_json import CaseFiles, DatasetInfo, load_dataset_json
from unetr_pp.io.images import Geometry, read_case_channels, read_case_images, read_image, read_image_shape, write_image

__all__ = [
    "CaseFiles",
    "DatasetInfo",
    "Geometry",
    "load_dataset_json",
    "read_case_channels",
    "read_case_images",
    "read_image",
    "read_image_shape",
    "write_image",
]
