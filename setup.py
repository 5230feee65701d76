from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="unetr_pp",
    version="0.1.0",
    description="Self-configuring 3D medical image segmentation: UNETR++, UNETR, UX-Net family, nnU-Net UNet",
    long_description=Path(__file__).with_name("README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["unetr_pp", "unetr_pp.*"]),
    package_data={"unetr_pp": ["planning/presets/*.json", "training/importing/*.json"]},
    install_requires=[
        "torch>=2.1",
        "numpy>=1.24",
        "scipy>=1.10",
        "SimpleITK>=2.2",
        "nibabel>=5.0",
        "scikit-image>=0.21",
        "batchgenerators>=0.25",
        "medpy>=0.5.2",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "pillow>=9.1",  # PNG quantization of the evaluation pictures (Image.Quantize)
        "monai>=1.5",
        "einops>=0.6",
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-xdist>=3", "onnx>=1.16", "onnxruntime>=1.17", "dask>=2024.1",
                 "distributed>=2024.1"],
        # unetr_pp_export --format onnx and unetr_pp_predict --backend onnxruntime
        "deploy": ["onnx>=1.16", "onnxruntime>=1.17"],
        # --dask ADDRESS on unetr_pp_plan_and_preprocess, unetr_pp_predict and unetr_pp_evaluate
        "dask": ["dask>=2024.1", "distributed>=2024.1"],
        # peers of bench/ without nnunetv2 itself, whose requirements pull torchvision (see bench/README.md)
        "bench": ["surface-distance>=0.1", "acvl-utils==0.2.6", "batchgeneratorsv2==0.3.6", "blosc2", "seaborn",
                  "yacs", "scikit-learn", "pandas", "dicom2nifti", "tifffile", "imagecodecs", "graphviz"],
    },
    entry_points={
        "console_scripts": [
            "unetr_pp_make_demo_task=unetr_pp.cli.make_demo_task:main",
            "unetr_pp_convert_task=unetr_pp.cli.convert_task:main",
            "unetr_pp_plan_and_preprocess=unetr_pp.cli.plan_and_preprocess:main",
            "unetr_pp_train=unetr_pp.cli.train:main",
            "unetr_pp_predict=unetr_pp.cli.predict:main",
            "unetr_pp_export=unetr_pp.cli.export:main",
            "unetr_pp_evaluate=unetr_pp.cli.evaluate:main",
            "unetr_pp_model_summary=unetr_pp.cli.model_summary:main",
            "unetr_pp_compare=unetr_pp.cli.compare:main",
            "unetr_pp_import_model=unetr_pp.cli.import_model:main",
        ]
    },
)
