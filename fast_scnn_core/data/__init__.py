"""Datasets (Cityscapes layout, generic image/mask folders), transforms and the synthetic generator.

`cityscapes_pairs` and `folder_pairs` list (image, label) files and check that every image has its
label; `SegmentationDataset` reads a pair, maps label ids to class ids and applies the transform.
"""
