"""lm-evaluation-harness scores `genkit serve` as it scores any OpenAI-compatible server: its
local-completions model asks for the log-probabilities of given text (echo with logprobs), and a
multiple-choice task defined in a local YAML over a local JSONL file gets the accuracy that
`genkit eval` gets by scoring each label's likelihood on the same records."""

import json

import pytest

from tests.cli.genkit_server import genkit_server
from tests.helpers import cli_in_process
from tests.pairs_helpers import tiny_pairs_run

LABELS = ["blue", "green", "red"]  # the tiny task's labels, sorted as genkit sorts a label set


@pytest.mark.slow
def test_lm_eval_scores_genkit_serve_as_genkit_eval_does(tmp_path, monkeypatch):
    lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is a dev dependency (pip install -e '.[dev]')")
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    run = tmp_path / "run"
    # " =>" between prompt and label: byte-level BPE never merges a label's first letters into it
    trained = cli_in_process("train", *tiny_pairs_run(tmp_path), 'data.separator=" =>"', "trainer.max_steps=8",
                             f"hydra.run.dir={run}", cwd=tmp_path)  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    scored = cli_in_process("eval", f"ckpt={run}", "which=last", "label_scoring=sum", f"out={tmp_path / 'eval.json'}",
                            cwd=tmp_path)  # fmt: skip
    assert scored.returncode == 0, scored.stderr[-3000:]
    ours = json.loads((tmp_path / "eval.json").read_text())
    exported = cli_in_process("export", f"ckpt={run}", "which=last", "format=hf", f"out={tmp_path / 'hf'}",
                              cwd=tmp_path)  # fmt: skip
    assert exported.returncode == 0, exported.stderr[-3000:]

    # the task: each test record's prompt and separator, then a label and genkit's end-of-text (a label
    # scored by genkit ends with it), chosen by likelihood
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "genkit_tiny.yaml").write_text(
        "task: genkit_tiny\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {tmp_path / 'pairs_labels' / 'test.jsonl'}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "{{prompt}} =>"\n'
        f"doc_to_choice: {json.dumps([label + '<|endoftext|>' for label in LABELS])}\n"
        f'doc_to_target: "{{{{{LABELS}.index(completion)}}}}"\n'
        'target_delimiter: ""\n'
        "metric_list:\n  - metric: acc\n"
    )
    with genkit_server(run / "checkpoints" / "last.ckpt", tmp_path) as server:
        results = lm_eval.simple_evaluate(
            model="local-completions",
            model_args={"base_url": server.url + "v1/completions", "tokenizer": str(tmp_path / "hf"),
                        "tokenizer_backend": "huggingface", "model": "tiny", "max_retries": 1},
            tasks=["genkit_tiny"],
            task_manager=TaskManager(include_path=str(tasks)),
            log_samples=True,
        )  # fmt: skip
        assert server.stop() == 0
    assert results["results"]["genkit_tiny"]["acc,none"] == pytest.approx(ours["test/accuracy"])
    assert ours["test/label_scoring"] == "sum"
    # and record by record: each label's log-likelihood as genkit scores it
    from genkit.metrics.text_tasks import label_evidence
    from genkit.training.restore import load_model

    model, data, _ = load_model(run / "checkpoints" / "last.ckpt")
    records = data.task_records("test")
    scores = label_evidence(model, data, records).scores
    row_of = {r["prompt"]: k for k, r in enumerate(records)}
    samples = results["samples"]["genkit_tiny"]
    assert len(samples) == len(records) == ours["test/records"]
    for sample in samples:
        theirs = [float(ll) for ll, _ in sample["filtered_resps"]]
        assert theirs == pytest.approx(scores[row_of[sample["doc"]["prompt"]]].tolist(), abs=1e-3)
