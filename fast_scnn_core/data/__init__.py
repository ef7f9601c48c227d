"""Datasets (Cityscapes layout, generic image/mask folders), transforms and the synthetic generator."""
