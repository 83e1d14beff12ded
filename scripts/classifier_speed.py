"""How long the domain classifier of `genkit eval` takes to train from nothing, and its accuracy.

python scripts/classifier_speed.py [mnist] [fashion_mnist] [--epochs N (default: the data set's)]

It trains exactly as the first `genkit eval` of a data set does (genkit.metrics.classifier), on
the data under GENKIT_DATA_DIR, without reading or writing the cache. Targets on 2 CPU cores:
at most 60 s, test accuracy >= 0.990 on MNIST and >= 0.920 on Fashion-MNIST.
"""

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch

from genkit.metrics.classifier import CLASSIFIER_VERSION, train_classifier
from genkit.training.build import build_datamodule
from genkit.training.config import compose_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="*", default=["mnist", "fashion_mnist"])
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, classifier v{CLASSIFIER_VERSION}")
    for name in args.data:
        with tempfile.TemporaryDirectory() as tmp:
            datamodule = build_datamodule(compose_config("train", [f"data={name}"], Path(tmp)))
            datamodule.setup()
            start = time.perf_counter()
            _, test_accuracy = train_classifier(datamodule, args.epochs, "cpu")
            seconds = time.perf_counter() - start
        epochs = args.epochs or datamodule.classifier_epochs
        print(f"{name}: {epochs} epochs in {seconds:.1f} s, test accuracy {test_accuracy:.4f}")


if __name__ == "__main__":
    main()
