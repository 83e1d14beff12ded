"""`genkit eval`: score a checkpoint on its test split and write <run_dir>/eval.json.

Every family gets its test metrics from Lightning's test loop (perplexity for language models, ELBO and
importance-sampled NLL for the VAE, the denoising loss for diffusion); options of this command
that concern a family reach it through `GenerativeModel.configure_test`. Image models also get
fid_clf and is_clf on genkit's domain classifier and, where the weights can be had, the
standard Inception FID. `real=true` scores real training images instead of a model: the FID
sanity check (it should be near zero).
"""

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from omegaconf import DictConfig, open_dict

from genkit.checkpoints.files import config_of, load_checkpoint, resolve_checkpoint, run_dir_of
from genkit.checkpoints.starting_weights import starting_checkpoint
from genkit.commands.command_options import (
    CHECKPOINT_OPTIONS,
    INFERENCE_OPTIONS,
    check_family_options,
    check_options,
    family_choices,
)
from genkit.commands.report import write_report
from genkit.console import tracked
from genkit.data.images import ImageDataModule
from genkit.errors import GenkitError, first_line
from genkit.metrics.baseline import BASELINES, baseline_scores
from genkit.metrics.classifier import CLASSIFIER_VERSION, domain_classifier
from genkit.metrics.image_scores import classifier_scores, inception_fid
from genkit.metrics.label_scoring import AUTO, RULES
from genkit.metrics.text_tasks import LABEL_CHOICES, choose_label_scoring, confusion_png, report_table, task_scores
from genkit.models.base import GenerativeModel, balanced_labels, sample_from, sample_inputs
from genkit.options import BOOLEAN, Option, number, one_of, whole_number
from genkit.runtime import device_for, inference_autocast, inference_precision
from genkit.training.build import build_datamodule, build_model, evaluation_trainer, scalar_metrics
from genkit.training.restore import load_model

log = logging.getLogger("genkit")

# this command's own options; a family declares its own (GenerativeModel.test_options: the VAE's
# nll_samples, diffusion's guidance)
OPTIONS = {
    **CHECKPOINT_OPTIONS,
    **INFERENCE_OPTIONS,
    "n_samples": Option(10000, "generated images scored against the test split", whole_number(1)),
    "batch_size": Option(500, "images generated and scored at once", whole_number(1)),
    "seed": Option(0, "the random seed of the generated images", whole_number(0)),
    "real": Option(False, "score real training images instead of a model (the FID floor; with data=<set>)", BOOLEAN),
    "inception": Option(
        "auto", "the standard Inception-v3 FID: auto (GPUs only), true, false", one_of("auto", True, False)
    ),
    "inception_weights": Option(None, "torch-fidelity's Inception weights file, for offline use"),
    "classifier_epochs": Option(
        None, "epochs of the domain classifier, trained once per data set (null: the data's)", whole_number(1)
    ),
    "out": Option(None, "where to write the report (default: <run>/eval.json)", shown="out=<file>"),
    "data_path": Option(
        None,
        "your copy of a checkpoint's own data (data=text, image_folder, pairs): a checkpoint not trained on "
        "this machine never chooses which of your files are read",
        shown="data_path=<file or folder>",
    ),
    "choose_labels": Option(
        "likelihood", "a label task (data=pairs): pick the likeliest label, or generate one", one_of(*LABEL_CHOICES)
    ),
    "task_records": Option(
        None, "a task (data=pairs): score N evenly spaced validation and test records (null: all)", whole_number(1)
    ),
    "baseline": Option(
        None,
        "score a baseline on data=pairs instead of a checkpoint: tfidf (TF-IDF words and characters + logistic "
        "regression), the floor a fine-tune must beat",
        one_of(None, *BASELINES),
    ),
    "label_scoring": Option(
        AUTO,
        "a label task: how label scores become a choice (sum, mean, calibrated, pmi, prior; auto: the best on "
        "validation macro F1)",
        one_of(AUTO, *RULES),
    ),
    "label_prior_strength": Option(
        None,
        "label_scoring=prior (or auto): how much of the training label prior is divided out (null: validation picks)",
        number(lambda v: v >= 0, "a number of at least 0"),
    ),
}


def _generated(
    model: GenerativeModel, datamodule, n: int, batch_size: int, seed: int, precision: str
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """n generated images in batches, each with the class labels it was asked for (a conditional
    model: the n split evenly over the classes) or None."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    inputs = sample_inputs(model, datamodule, n, {})
    if "labels" in inputs:  # exactly n, the classes in turn (labels=all rounds up to whole grid rows)
        inputs["labels"] = balanced_labels(n, datamodule.num_classes)
    starts = range(0, n, batch_size)
    for start in tracked(starts, len(starts), f"generating and scoring {n} images: batch"):
        batch = {name: value[start : start + batch_size] for name, value in inputs.items()}
        with inference_autocast(model.device, precision):
            images, _ = sample_from(model, datamodule, min(batch_size, n - start), generator, {}, batch)
        yield images.float(), batch.get("labels")


def _image_scores(cfg: DictConfig, datamodule: ImageDataModule, fake, device: torch.device) -> dict:
    """fid_clf / is_clf (/ class_acc) on the data set's domain classifier when it has class labels,
    and the Inception FID on GPUs (inception=auto), when asked, or when it is the only FID there is
    (unlabelled images: a classifier needs at least two classes to learn features)."""
    labelled = datamodule.num_classes >= 2
    scores: dict = {}
    if labelled:
        classifier, record = domain_classifier(datamodule, device=device, epochs=cfg.classifier_epochs)
        scores["classifier"] = {k: record.get(k) for k in ("test_accuracy", "epochs", "version", "path")}
        scores.update(
            classifier_scores(
                classifier, datamodule.test_images(), fake(), device, getattr(datamodule, "class_names", None)
            )
        )
    else:
        scores.update(fid_clf=None, is_clf=None)
        scores["fid_clf_note"] = (
            f"{datamodule.name} has no class labels, so genkit has no domain classifier to score it with "
            f"(put the images in one sub-folder per class to get fid_clf, is_clf and class_acc)"
        )
    if cfg.inception == "auto" and device.type == "cpu" and labelled:
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
                f"unavailable ({first_line(err, 160)}); put torch-fidelity's "
                f"pt_inception-2015-12-05 weights on disk and pass inception_weights=<file>"
            )
            if not labelled:  # nothing else scores the images: say it in so many words
                scores["inception_fid_note"] = (
                    "no FID can be computed: the Inception FID is " + scores["inception_fid_note"]
                )
    elif not labelled:
        scores["inception_fid"] = None
        scores["inception_fid_note"] = "no FID can be computed: inception=false, and the data has no labels"
    return scores


def _scores(
    cfg: DictConfig, model: GenerativeModel, datamodule, run_cfg: DictConfig, options, device, figure: Path
) -> dict:
    """The family's test metrics on the test split, and for images the scores of n generated ones;
    for a task (data=pairs) its scores on the test records, the label report drawn into `figure`."""
    results = dict(model.configure_test(options, device))
    precision, _ = inference_precision(device, cfg.precision)
    trainer = evaluation_trainer(run_cfg, model, precision)
    trainer.test(model, datamodule=datamodule, verbose=False)
    results.update(scalar_metrics(trainer))
    results["precision"] = precision
    results.update(_generated_scores(cfg, model, datamodule, device, precision, figure))
    return results


def _generated_scores(cfg: DictConfig, model: GenerativeModel, datamodule, device, precision: str, figure: Path):
    """A task's scores on its test records (data=pairs), or the scores of generated images; the
    model runs in `precision`, genkit's domain classifier in its own."""
    results: dict = {}
    if datamodule.task_records("test"):
        with inference_autocast(device, precision):
            results.update(_task_scores(cfg, model, datamodule, device, figure))
    if datamodule.modality == "images":
        model.to(device).eval()
        results["n_samples"] = cfg.n_samples
        fake = lambda: _generated(model, datamodule, cfg.n_samples, cfg.batch_size, cfg.seed, precision)
        results.update(_image_scores(cfg, datamodule, fake, device))
    return results


def _task_scores(cfg: DictConfig, model: GenerativeModel, datamodule, device, figure: Path) -> dict:
    """The task's test scores; a label task's labels chosen by the rule validation picks."""
    results: dict = {}
    rule = None
    if datamodule.labels and cfg.choose_labels == "likelihood":
        # the rule is chosen on validation records, never on the test records it is scored on
        rule, by_rule = choose_label_scoring(
            model.to(device), datamodule, wanted=cfg.label_scoring, strength=cfg.label_prior_strength,
            max_records=cfg.task_records,
        )  # fmt: skip
        results["val/macro_f1_by_label_scoring"] = by_rule
        log.info("Labels chosen by label_scoring=%s: the best validation macro F1 (%.3f)", rule, by_rule[rule])
    scores, report, _ = task_scores(
        model.to(device), datamodule, "test", choose_labels=cfg.choose_labels, label_scoring=rule or AUTO,
        max_records=cfg.task_records,
    )  # fmt: skip
    results.update(scores)
    if report is not None:
        results["test/labels_chosen_by"] = cfg.choose_labels
        results["test/confusion_matrix_png"] = str(confusion_png(report, datamodule.labels, figure))
        results["test/classification_report"] = report
        print(report_table(report))
    return results


def _starting_model_scores(cfg: DictConfig, start: str, run_cfg: DictConfig, datamodule, options, device, out: Path):
    """The model a fine-tuned run started from (model.init_from), scored on the fine-tuned run's
    test data exactly as the run is; computed once and read back from eval.json afterwards."""
    source = _resolved_start(start)
    key = {
        "init_from": start,
        # the file it resolved to and when that was written: a run's best.ckpt can change
        "checkpoint": str(source.resolve()) if source else None,
        "checkpoint_mtime": source.stat().st_mtime if source else None,
        "scored_with": str(out.parent.resolve()),
        **{k: cfg[k] for k in ("n_samples", "seed", "classifier_epochs", "inception", "inception_weights")},
        "choose_labels": cfg.choose_labels,
        # as the scores record it: the precision used, not the one asked for (auto)
        "precision": inference_precision(device, cfg.precision)[0],
        "label_scoring": cfg.label_scoring,
        "label_prior_strength": cfg.label_prior_strength,
        "task_records": cfg.task_records,
        "classifier_version": CLASSIFIER_VERSION,  # another classifier scores differently
        **options,
    }
    if out.is_file():
        try:
            cached = json.loads(out.read_text()).get("before") or {}
        except ValueError:
            cached = {}
        if cached and all(cached.get(k) == v for k, v in key.items()) and "note" not in cached:
            log.info("The starting model %s: its scores from %s (computed once)", start, out)
            return cached
    log.info("Scoring the starting model %s on the same test data", start)
    try:
        if source is not None:  # a genkit run: its model as it was trained (its own config)
            model, _, start_cfg = load_model(source, trusted_targets=cfg.trusted_targets, data_root=cfg.data_root)
        else:  # Hugging Face weights, in the fine-tuned run's network
            start_cfg = run_cfg.copy()
            with open_dict(start_cfg):
                start_cfg.model.init_from = start
                start_cfg.finetune = None
            model = build_model(start_cfg, report=False).eval()
        figure = out.with_name("confusion_matrix_before.png")
        return {**key, **_scores(cfg, model, datamodule, start_cfg, options, device, figure)}
    except GenkitError as err:
        return {**key, "note": f"the starting model is not scored: {err}"}


def _resolved_start(start: str) -> Path | None:
    try:
        return starting_checkpoint(start)
    except GenkitError:  # a run that is not on this machine: said in the note
        return None


def evaluate(cfg: DictConfig) -> dict:
    check_options("eval", cfg, OPTIONS)
    t0 = time.perf_counter()
    device = device_for("auto")
    if cfg.baseline:
        if cfg.ckpt is not None or cfg.real:
            other = "ckpt=" if cfg.ckpt is not None else "real=true"
            raise GenkitError(
                f"baseline={cfg.baseline} scores a baseline fitted on the data (data=pairs data.path=...), not a "
                f"checkpoint or real images: drop {other}, or drop baseline=."
            )
        datamodule = build_datamodule(cfg)
        results, report = baseline_scores(cfg.baseline, datamodule)
        out = Path(cfg.out or Path(cfg.paths.log_dir) / f"eval_baseline_{cfg.baseline}_{datamodule.name}.json")
        figure = out.with_name(f"{out.stem}_confusion.png")
        results["test/confusion_matrix_png"] = str(confusion_png(report, datamodule.labels, figure))
        results["test/classification_report"] = report
        print(report_table(report))
    elif cfg.real:
        datamodule = build_datamodule(cfg)
        datamodule.setup()
        results = {"source": f"real {datamodule.name} training images", "n_samples": cfg.n_samples}
        real = lambda: ((x, None) for x in datamodule.train_images(cfg.n_samples, cfg.batch_size, cfg.seed))
        results.update(_image_scores(cfg, datamodule, real, device))
        out = Path(cfg.out or Path(cfg.paths.log_dir) / f"eval_real_{datamodule.name}.json")
    else:
        path = resolve_checkpoint(cfg.ckpt, cfg.paths.log_dir, cfg.which)
        log.info("No ckpt given: evaluating the newest run, %s" if cfg.ckpt is None else "Evaluating %s", path)
        checkpoint = load_checkpoint(path)
        # the weights the run started from (load_model clears model.init_from in the config it builds by)
        start = config_of(checkpoint, path).model.get("init_from")
        model, datamodule, run_cfg = load_model(path, trusted_targets=cfg.trusted_targets, data_root=cfg.data_root,
                                                data_path=cfg.data_path, reads_data=True,
                                                checkpoint=checkpoint)  # fmt: skip
        results = {"checkpoint": str(path), "run_name": run_cfg.get("run_name")}
        log.info("Precision %s %s", *inference_precision(device, cfg.precision))
        options = family_choices("eval", cfg, OPTIONS)
        check_family_options("eval", options, model.test_options, type(model).__name__)
        out = Path(cfg.out or run_dir_of(path) / "eval.json")
        results.update(_scores(cfg, model, datamodule, run_cfg, options, device, out.with_name("confusion_matrix.png")))
        if start:
            results["before"] = _starting_model_scores(cfg, str(start), run_cfg, datamodule, options, device, out)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    write_report(results, out, "genkit eval")
    return results
