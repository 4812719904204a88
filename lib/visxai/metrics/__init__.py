"""Evaluation metrics shared by the notebooks (perturbation, confidence, segmentation, entropy)."""
