"""Evaluation metrics that put every image model on one scale (classifier FID and IS)."""
