"""FID and Inception-score analogues on the domain classifier, and the standard Inception FID.

FID uses torchmetrics' Frechet distance; only the feature extractor differs from the standard
score: the cached domain classifier (genkit.metrics.classifier) instead of Inception-v3.
"""

import logging
from collections.abc import Iterable

import torch
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore

from genkit.metrics.classifier import DomainClassifier, Features, Logits

log = logging.getLogger("genkit")


@torch.no_grad()
def classifier_scores(
    classifier: DomainClassifier, real: Iterable[torch.Tensor], fake: Iterable[torch.Tensor], device
) -> dict[str, float]:
    """fid_clf between the real and fake image batches (in [-1, 1]), and is_clf of the fakes."""
    classifier = classifier.to(device).eval()
    fid = FrechetInceptionDistance(feature=Features(classifier)).to(device)
    inception_score = InceptionScore(feature=Logits(classifier), splits=10).to(device)
    for batch in real:
        fid.update(batch.to(device), real=True)
    for batch in fake:
        batch = batch.to(device)
        fid.update(batch, real=False)
        inception_score.update(batch)
    is_mean, is_std = inception_score.compute()
    return {"fid_clf": fid.compute().item(), "is_clf": is_mean.item(), "is_clf_std": is_std.item()}


@torch.no_grad()
def inception_fid(
    real: Iterable[torch.Tensor], fake: Iterable[torch.Tensor], device, weights_path: str | None = None
) -> float:
    """The standard FID on Inception-v3 pool features (torch-fidelity's weights). Raises when
    the weights are neither at weights_path nor downloadable."""
    fid = FrechetInceptionDistance(feature=2048, normalize=True, feature_extractor_weights_path=weights_path)
    fid = fid.to(device)
    for is_real, batches in ((True, real), (False, fake)):
        for batch in batches:
            rgb = ((batch.to(device) + 1) / 2).clamp(0, 1).expand(-1, 3, -1, -1)  # grey -> RGB in [0, 1]
            fid.update(rgb, real=is_real)
    return fid.compute().item()
