"""`genkit eval`: score a checkpoint on its test split and write <run_dir>/eval.json.

Every family gets its test metrics from Lightning's test loop (perplexity for GPT, ELBO and
importance-sampled NLL for the VAE, the denoising loss for diffusion); options of this command
that concern a family reach it through `GenerativeModel.configure_test`. Image models also get
fid_clf and is_clf on genkit's domain classifier and, where the weights can be had, the
standard Inception FID. `real=true` scores real training images instead of a model: the FID
sanity check (it should be near zero).
"""

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from omegaconf import DictConfig

from genkit.build import build_datamodule, evaluation_trainer, scalar_metrics
from genkit.checkpoints import load_model, resolve_checkpoint, run_dir_of
from genkit.data.images import ImageDataModule
from genkit.metrics.classifier import domain_classifier
from genkit.metrics.image_scores import classifier_scores, inception_fid
from genkit.models.base import GenerativeModel, balanced_labels, sample_from, sample_inputs
from genkit.options import check_family_options, check_options
from genkit.report import write_report
from genkit.runtime import device_for

log = logging.getLogger("genkit")

# keys of configs/eval.yaml that are this command's own; the others are options for the family
EVAL_KEYS = (
    "ckpt", "which", "n_samples", "batch_size", "seed", "real", "inception", "inception_weights",
    "classifier_epochs", "out", "paths", "data", "trusted_targets", "data_root",
)  # fmt: skip


def _generated(
    model: GenerativeModel, datamodule, n: int, batch_size: int, seed: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """n generated images in batches, each with the class labels it was asked for (a conditional
    model: the n split evenly over the classes) or None."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    inputs = sample_inputs(model, datamodule, n, {})
    if "labels" in inputs:  # exactly n, the classes in turn (labels=all rounds up to whole grid rows)
        inputs["labels"] = balanced_labels(n, datamodule.num_classes)
    for start in range(0, n, batch_size):
        batch = {name: value[start : start + batch_size] for name, value in inputs.items()}
        images, _ = sample_from(model, datamodule, min(batch_size, n - start), generator, {}, batch)
        yield images.float(), batch.get("labels")


def _image_scores(cfg: DictConfig, datamodule: ImageDataModule, fake, device: torch.device) -> dict:
    classifier, record = domain_classifier(datamodule, device=device, epochs=cfg.classifier_epochs)
    scores = {"classifier": {k: record[k] for k in ("test_accuracy", "path")}}
    scores.update(
        classifier_scores(
            classifier, datamodule.test_images(), fake(), device, getattr(datamodule, "class_names", None)
        )
    )
    if cfg.inception == "auto" and device.type == "cpu":
        scores["inception_fid"] = None
        scores["inception_fid_note"] = "skipped on CPU (Inception-v3 on 299x299 images is slow); set inception=true"
    elif cfg.inception in (True, "auto"):
        try:
            scores["inception_fid"] = inception_fid(
                datamodule.test_images(), (x for x, _ in fake()), device, cfg.inception_weights
            )
        except Exception as err:  # no weights offline, or torch-fidelity missing: say so, never fail
            scores["inception_fid"] = None
            scores["inception_fid_note"] = (
                f"unavailable ({type(err).__name__}: {str(err).splitlines()[0][:160]}); put torch-fidelity's "
                f"pt_inception-2015-12-05 weights on disk and pass inception_weights=<file>"
            )
    return scores


def evaluate(cfg: DictConfig) -> dict:
    check_options("eval", cfg)
    t0 = time.perf_counter()
    device = device_for("auto")
    if cfg.real:
        datamodule = build_datamodule(cfg)
        datamodule.setup()
        results = {"source": f"real {datamodule.name} training images", "n_samples": cfg.n_samples}
        real = lambda: ((x, None) for x in datamodule.train_images(cfg.n_samples, cfg.batch_size, cfg.seed))
        results.update(_image_scores(cfg, datamodule, real, device))
        out = Path(cfg.out or Path(cfg.paths.log_dir) / f"eval_real_{datamodule.name}.json")
    else:
        path = resolve_checkpoint(cfg.ckpt, cfg.paths.log_dir, cfg.which)
        log.info("No ckpt given: evaluating the newest run, %s" if cfg.ckpt is None else "Evaluating %s", path)
        model, datamodule, run_cfg = load_model(path, trusted_targets=cfg.trusted_targets, data_root=cfg.data_root)
        results = {"checkpoint": str(path), "run_name": run_cfg.get("run_name")}
        options = {k: v for k, v in cfg.items() if k not in EVAL_KEYS}
        check_family_options("eval", options, model.test_options, type(model).__name__)
        results.update(model.configure_test(options, device))
        trainer = evaluation_trainer(run_cfg, model)
        trainer.test(model, datamodule=datamodule, verbose=False)
        results.update(scalar_metrics(trainer))
        if datamodule.modality == "images":
            model.to(device).eval()
            results["n_samples"] = cfg.n_samples
            fake = lambda: _generated(model, datamodule, cfg.n_samples, cfg.batch_size, cfg.seed)
            results.update(_image_scores(cfg, datamodule, fake, device))
        out = Path(cfg.out or run_dir_of(path) / "eval.json")
    results["seconds"] = round(time.perf_counter() - t0, 1)
    write_report(results, out, "genkit eval")
    return results
