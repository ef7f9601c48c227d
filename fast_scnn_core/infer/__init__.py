"""Inference: options (torch-free), device choice, the one export/runtime graph, backends, Segmenter, visualisation."""
