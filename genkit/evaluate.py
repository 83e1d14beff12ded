"""`genkit eval`: score a checkpoint on its test split and write <run_dir>/eval.json.

Every family gets its test metrics from Lightning's test loop (perplexity for GPT, ELBO and
importance-sampled NLL for the VAE, the denoising loss for diffusion). Image models also get
fid_clf and is_clf on genkit's domain classifier and, where the weights can be had, the
standard Inception FID. `real=true` scores real training images instead of a model: the FID
sanity check (it should be near zero).
"""

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig

from genkit.build import build_datamodule
from genkit.callbacks.progress import progress_bar
from genkit.checkpoints import resolve_checkpoint, run_dir_of
from genkit.data.images import ImageDataModule
from genkit.errors import GenkitError
from genkit.metrics.classifier import domain_classifier
from genkit.metrics.image_scores import classifier_scores, inception_fid
from genkit.report import write_report
from genkit.sample import load_model

log = logging.getLogger("genkit")

CPU_NLL_SAMPLES = 100


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def nll_samples(requested: int | str | None, model_default: int, device: str) -> int:
    """Importance samples for the VAE's test NLL. `auto` keeps the model's own number on a GPU and
    caps it at 100 on a CPU, where 1000 samples over the 10k test images take about half an hour
    on two cores; the number used is part of the report."""
    if requested in (None, "auto"):
        if device == "cpu" and model_default > CPU_NLL_SAMPLES:
            log.info(
                "test NLL with %d importance samples on CPU (the model's %d take long here; "
                "pass nll_samples=%d for them)",
                CPU_NLL_SAMPLES,
                model_default,
                model_default,
            )
            return CPU_NLL_SAMPLES
        return model_default
    if not isinstance(requested, int) or requested < 0:
        raise GenkitError(f"nll_samples={requested!r} must be a whole number of importance samples, or auto")
    return requested


def _test_images(datamodule: ImageDataModule) -> Iterator[torch.Tensor]:
    for x, _ in datamodule.test_dataloader():
        yield x


def _generated(model, n: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    generator = torch.Generator(device=model.device).manual_seed(seed)
    for start in range(0, n, batch_size):
        yield model.sample(min(batch_size, n - start), generator=generator).float()


def _real_train_images(datamodule: ImageDataModule, n: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    order = torch.randperm(len(datamodule.train_set), generator=torch.Generator().manual_seed(seed))[:n]
    for start in range(0, len(order), batch_size):
        yield datamodule.train_set.__getitems__(order[start : start + batch_size])[0]


def _test_metrics(model: L.LightningModule, datamodule, precision: str) -> dict[str, float]:
    trainer = L.Trainer(
        accelerator="auto",
        devices=1,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[progress_bar()],
    )
    trainer.test(model, datamodule=datamodule, verbose=False)
    return {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}


def _image_scores(cfg: DictConfig, datamodule: ImageDataModule, fake) -> dict:
    device = _device()
    classifier, record = domain_classifier(datamodule, device=device, epochs=cfg.classifier_epochs)
    scores = {"classifier": {k: record[k] for k in ("test_accuracy", "path")}}
    scores.update(classifier_scores(classifier, _test_images(datamodule), fake(), device))
    if cfg.inception == "auto" and device == "cpu":
        scores["inception_fid"] = None
        scores["inception_fid_note"] = "skipped on CPU (Inception-v3 on 299x299 images is slow); set inception=true"
    elif cfg.inception in (True, "auto"):
        try:
            scores["inception_fid"] = inception_fid(_test_images(datamodule), fake(), device, cfg.inception_weights)
        except Exception as err:  # no weights offline, or torch-fidelity missing: say so, never fail
            scores["inception_fid"] = None
            scores["inception_fid_note"] = (
                f"unavailable ({type(err).__name__}: {str(err).splitlines()[0][:160]}); put torch-fidelity's "
                f"pt_inception-2015-12-05 weights on disk and pass inception_weights=<file>"
            )
    return scores


def evaluate(cfg: DictConfig) -> dict:
    t0 = time.perf_counter()
    if cfg.real:
        datamodule = build_datamodule(cfg)
        datamodule.setup()
        results = {"source": f"real {datamodule.name} training images", "n_samples": cfg.n_samples}
        results.update(
            _image_scores(
                cfg, datamodule, lambda: _real_train_images(datamodule, cfg.n_samples, cfg.batch_size, cfg.seed)
            )
        )
        out = Path(cfg.out or Path(cfg.paths.log_dir) / f"eval_real_{datamodule.name}.json")
    else:
        path = resolve_checkpoint(cfg.ckpt, cfg.paths.log_dir)
        model, datamodule, run_cfg = load_model(path)
        precision = "bf16-mixed" if _device() == "cuda" else "32-true"
        results = {"checkpoint": str(path), "run_name": run_cfg.get("run_name")}
        if hasattr(model, "nll_samples"):
            model.nll_samples["test"] = nll_samples(cfg.nll_samples, model.nll_samples["test"], _device())
            results["nll_samples"] = model.nll_samples["test"]
        results.update(_test_metrics(model, datamodule, precision))
        if isinstance(datamodule, ImageDataModule):
            model.to(_device()).eval()
            results["n_samples"] = cfg.n_samples
            results.update(
                _image_scores(cfg, datamodule, lambda: _generated(model, cfg.n_samples, cfg.batch_size, cfg.seed))
            )
        out = Path(cfg.out or run_dir_of(path) / "eval.json")
    results["seconds"] = round(time.perf_counter() - t0, 1)
    write_report(results, out, "genkit eval")
    return results
