"""unetr_pp: a self-configuring framework for 3D medical image segmentation."""

__version__ = "0.1.0"
