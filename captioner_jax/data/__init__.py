"""Captioner inputs: per-video feature loading/combination and the caption Grain pipeline."""
