"""Logs val/fid_clf at every validation: generated images against validation images, scored on
the data set's cached domain classifier (and val/class_acc for a conditional model). It gives GAN
sweeps a metric that measures samples."""

import lightning as L
import torch

from genkit.metrics.classifier import domain_classifier
from genkit.metrics.image_scores import classifier_scores
from genkit.models.base import balanced_labels, sample_from


class ValidationFID(L.Callback):
    def __init__(
        self, n_samples: int = 1000, batch_size: int = 250, classifier_epochs: int | None = None, seed: int = 0
    ):
        self.n_samples, self.batch_size = n_samples, batch_size
        self.classifier_epochs, self.seed = classifier_epochs, seed
        self.classifier = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # here, not in the validation loop: training the classifier (the first time) needs gradients,
        # which Lightning's validation loop turns off
        self.classifier, _ = domain_classifier(
            trainer.datamodule, device=pl_module.device, epochs=self.classifier_epochs
        )

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        datamodule = trainer.datamodule
        n = min(self.n_samples, len(datamodule.val_set))
        real = datamodule.sample_images(n).split(self.batch_size)
        generator = torch.Generator(device=pl_module.device).manual_seed(self.seed)
        was_training = pl_module.training
        pl_module.eval()
        try:
            # (images, labels asked for): a conditional model draws every class in turn
            fake = []
            for b in real:
                labels = balanced_labels(len(b), pl_module.num_classes) if pl_module.conditional else None
                images, _ = sample_from(
                    pl_module, datamodule, len(b), generator, {}, None if labels is None else {"labels": labels}
                )
                fake.append((images, labels))
        finally:
            pl_module.train(was_training)
        scores = classifier_scores(
            self.classifier, real, fake, pl_module.device, getattr(datamodule, "class_names", None)
        )
        pl_module.log("val/fid_clf", scores["fid_clf"])
        pl_module.log("val/is_clf", scores["is_clf"])
        if "class_acc" in scores:
            pl_module.log("val/class_acc", scores["class_acc"])
