"""FID and Inception-score analogues on the domain classifier, and the standard Inception FID.

FID uses torchmetrics' Frechet distance; only the feature extractor differs from the standard
score: the cached domain classifier (genkit.metrics.classifier) instead of Inception-v3.
"""

import logging
from collections.abc import Iterable, Sequence

import torch
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore

from genkit.metrics.classifier import DomainClassifier, Features, Logits

log = logging.getLogger("genkit")


@torch.no_grad()
def classifier_scores(
    classifier: DomainClassifier,
    real: Iterable[torch.Tensor],
    fake: Iterable[torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]],
    device,
    class_names: Sequence[str] | None = None,
) -> dict:
    """fid_clf between the real and fake image batches (in [-1, 1]), and is_clf of the fakes.

    Fake batches may come as (images, labels asked for): then also class_acc, the share of fakes
    that the classifier assigns to the class asked for, overall and per class (`class_names`)."""
    classifier = classifier.to(device).eval()
    fid = FrechetInceptionDistance(feature=Features(classifier)).to(device)
    inception_score = InceptionScore(feature=Logits(classifier), splits=10).to(device)
    asked, predicted = [], []
    for batch in real:
        fid.update(batch.to(device), real=True)
    for batch in fake:
        images, labels = batch if isinstance(batch, tuple) else (batch, None)
        images = images.to(device)
        fid.update(images, real=False)
        inception_score.update(images)
        if labels is not None:
            asked.append(labels.cpu())
            predicted.append(classifier(images).argmax(1).cpu())
    is_mean, is_std = inception_score.compute()
    scores = {"fid_clf": fid.compute().item(), "is_clf": is_mean.item(), "is_clf_std": is_std.item()}
    if asked:
        scores.update(class_accuracy(torch.cat(asked), torch.cat(predicted), class_names))
    return scores


def class_accuracy(asked: torch.Tensor, predicted: torch.Tensor, class_names: Sequence[str] | None) -> dict:
    """class_acc overall, and per class (by name) for the classes that were asked for."""
    names = class_names or [str(i) for i in range(int(asked.max()) + 1)]
    correct = asked == predicted
    per_class = {names[c]: round(correct[asked == c].float().mean().item(), 4) for c in asked.unique().tolist()}
    return {"class_acc": correct.float().mean().item(), "class_acc_per_class": per_class}


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
