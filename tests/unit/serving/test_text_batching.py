"""Completions batched across requests equal each request generated alone (`genkit sample`'s path)."""

import torch

from genkit.models.base import sample_from
from genkit.serving.text import completion_fields, read_completion
from genkit.serving.text_runner import TextRunner, run_to_end
from tests.unit.serving.conftest import RecordingJob

LIMITS = {"max_n": 8, "max_tokens": 64, "max_steps": 10}


def test_batched_completions_equal_unbatched(tiny_gpt):
    model, data, _ = tiny_gpt
    fields = completion_fields(model, data, LIMITS)
    bodies = [  # two prompts of one length (one pass), one of another, each with its own sampling
        {"prompt": "line 1", "max_tokens": 6, "temperature": 1.0, "n": 2, "seed": 3},
        {"prompt": "line 2", "max_tokens": 4, "temperature": 0.7, "top_k": 5, "seed": 4},
        {"prompt": "of a", "max_tokens": 5, "temperature": 0, "seed": 5},
        {"prompt": "line 3", "max_tokens": 6, "top_p": 0.9, "stop": "e", "seed": 6},
    ]
    jobs = [RecordingJob(read_completion(b, fields, model, data)) for b in bodies]
    run_to_end(model, data, jobs)
    for body, job in zip(bodies, jobs, strict=True):
        assert job.error is None
        options = {k: body[k] for k in ("temperature", "top_k", "top_p") if k in body}
        generator = torch.Generator().manual_seed(body["seed"])
        alone, _ = sample_from(model, data, body.get("n", 1), generator,
                               {"prompt": body["prompt"], "max_new_tokens": body["max_tokens"], **options})  # fmt: skip
        prompt_length = len(job.payload.prompt_ids)
        for row, choice in zip(alone, job.result, strict=True):
            text = data.samples_as_text(torch.cat([row[:1], row[prompt_length:]])[None])[0]
            if "stop" in body and body["stop"] in text:
                assert choice.finish_reason == "stop" and choice.text == text[: text.index(body["stop"])]
            else:
                assert choice.finish_reason == "length" and choice.text == text


def test_streamed_pieces_add_up_to_the_completion(tiny_gpt):
    model, data, _ = tiny_gpt
    fields = completion_fields(model, data, LIMITS)
    streamed = RecordingJob(read_completion({"prompt": "line", "max_tokens": 8, "seed": 1, "stream": True, "n": 2},
                                            fields, model, data))  # fmt: skip
    whole = RecordingJob(read_completion({"prompt": "line", "max_tokens": 8, "seed": 1, "n": 2}, fields, model, data))
    run_to_end(model, data, [streamed, whole])
    for i, choice in enumerate(whole.result):
        assert "".join(text for index, text, _ in streamed.pieces if index == i) == choice.text
    assert [reason for _, _, reason in streamed.pieces if reason] == ["length", "length"]


def test_a_short_request_joins_a_running_long_one_and_leaves_first(tiny_gpt):
    """Continuous batching: the short request joins between two tokens of the long one, is
    answered while the long one runs on, and each gets what it gets alone; the long one runs
    past the model's context (its window slides)."""
    model, data, _ = tiny_gpt
    fields = completion_fields(model, data, LIMITS)
    long_body = {"prompt": "line 1", "max_tokens": model.net.block_size + 8, "temperature": 0.9, "seed": 1}
    short_body = {"prompt": "of", "max_tokens": 3, "temperature": 0.9, "seed": 2, "n": 2}
    long_job, short_job = (RecordingJob(read_completion(b, fields, model, data)) for b in (long_body, short_body))
    runner = TextRunner(model, data)
    runner.step([long_job])
    for _ in range(4):
        runner.step([])
    runner.step([short_job])
    assert runner.rows == 3
    for _ in range(2):
        runner.step([])
    assert short_job.result is not None and long_job.result is None and runner.rows == 1
    while runner.rows:
        runner.step([])
    for job in (long_job, short_job):
        alone = RecordingJob(job.payload.__class__(**{**vars(job.payload), "prompt_scores": []}))
        run_to_end(model, data, [alone])
        assert [c.text for c in job.result] == [c.text for c in alone.result]
    assert long_job.result[0].finish_reason == "length" and len(long_job.result[0].ids) == long_body["max_tokens"]
