"""POST /v1/images: n PNGs from an image model, with the options `genkit sample` takes.

Requests whose family options agree (steps, guidance, ...) share one call of the family's
`sample`, their class labels joined into one batch. That call draws its noise from one
generator, seeded by the batch's first request: a request's images equal `genkit sample
seed=<its seed>` when it runs alone (a batch of one: the response says `batched_with: 0`, or
serve with max_batch=1), not when others joined it. (The family contract takes one generator
per call; per-request noise would need a change there.)
"""

import base64
import secrets
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torchvision.io import encode_png

from genkit.data.base import GenkitDataModule
from genkit.errors import GenkitError
from genkit.models.base import GenerativeModel, sample_from, sample_inputs
from genkit.options import Option, one_of, whole_number
from genkit.serving.batcher import Job
from genkit.serving.fields import SEED, Field, RequestError, read_fields

FORMAT = Option("b64_json", "b64_json: PNGs in base64 in JSON; png: the PNG itself (n=1)", one_of("b64_json", "png"))


def image_fields(model: GenerativeModel, datamodule: GenkitDataModule, limits: Mapping[str, int]) -> dict:
    """The fields of POST /v1/images: n, seed, the data's class options (label, labels) and the
    family's sample options (diffusion: steps, guidance, sampler, eta), each with its declared rule."""
    fields = {
        "n": Field(Option(1, "how many images", whole_number(1)), limits["max_n"], "max_n"),
        "seed": Field(SEED),
        "response_format": Field(FORMAT),
    }
    data_options = datamodule.all_input_options()
    for key in datamodule.options_for(model.data_inputs({})):
        fields[key] = Field(data_options[key])
    for key, option in model.sample_options.items():
        fields[key] = Field(option, limits["max_steps"], "max_steps") if key == "steps" else Field(option)
    return fields


@dataclass
class ImageRequest:
    n: int
    seed: int
    options: dict[str, Any]  # the family's sample options
    inputs: dict[str, Any]  # the data's inputs (labels), n rows each
    as_png: bool


def read_images_request(body: Any, fields: Mapping[str, Field], model: GenerativeModel, datamodule) -> ImageRequest:
    values = read_fields(body, fields)
    n, seed = values.pop("n"), values.pop("seed")
    as_png = values.pop("response_format") == "png"
    if as_png and n != 1:
        raise RequestError(f"response_format=png sends one image; n={n} needs response_format=b64_json.", "n")
    options = {k: v for k, v in values.items() if v is not None}
    try:
        inputs = sample_inputs(model, datamodule, n, options)
    except GenkitError as err:  # a class the data does not have, label and labels together, ...
        given = [k for k in options if k not in model.sample_options]
        raise RequestError(str(err), given[0] if given else None) from None
    # n images however the classes fall (labels=all makes a row of every class; here, the classes in turn)
    inputs = {k: v[:n] if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    family = {k: v for k, v in options.items() if k in model.sample_options}
    if seed is None:
        seed = secrets.randbelow(2**63)  # within the rule of `seed`, so the answer can be replayed
    return ImageRequest(n, seed, family, inputs, as_png)


def run_image_batch(model: GenerativeModel, datamodule: GenkitDataModule, jobs: list[Job]) -> None:
    """One `sample` call per set of family options (in the model's worker thread); a model that asks
    the data for more than labels (a VAE reconstructing images) runs each request alone."""
    groups: dict[tuple, list[Job]] = defaultdict(list)
    for k, job in enumerate(jobs):
        r: ImageRequest = job.payload
        joins = set(r.inputs) <= {"labels"}
        groups[(tuple(sorted(r.options.items())), joins or k)].append(job)
    for group in groups.values():
        try:
            _sample_group(model, datamodule, group)
        except Exception as err:
            for job in group:
                job.fail(err)


@torch.inference_mode()
def _sample_group(model: GenerativeModel, datamodule: GenkitDataModule, jobs: list[Job]) -> None:
    requests: list[ImageRequest] = [job.payload for job in jobs]
    first = requests[0]
    generator = torch.Generator(device=model.device).manual_seed(first.seed)
    inputs = {name: torch.cat([r.inputs[name] for r in requests]) for name in first.inputs}
    total = sum(r.n for r in requests)
    images, _ = sample_from(model, datamodule, total, generator, first.options, inputs)
    pixels = ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu()  # (N, C, H, W)
    start = 0
    for job, r in zip(jobs, requests, strict=True):
        pngs = [encode_png(pixels[i]).numpy().tobytes() for i in range(start, start + r.n)]
        labels = r.inputs.get("labels")
        job.finish((pngs, None if labels is None else labels.tolist(), len(jobs) - 1))
        start += r.n


def images_body(request: ImageRequest, pngs: list[bytes], labels: list[int] | None, others: int, names) -> dict:
    data = []
    for i, png in enumerate(pngs):
        item = {"b64_json": base64.b64encode(png).decode("ascii")}
        if labels is not None:
            item["label"], item["class_name"] = labels[i], names[labels[i]]
        data.append(item)
    return {"data": data, "seed": request.seed, "batched_with": others}
