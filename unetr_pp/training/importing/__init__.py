"""Released checkpoints of the seeds in: key layouts, nnU-Net v1 plans, trained-model folders, pretrained weights."""
