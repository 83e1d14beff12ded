"""data=pairs through the CLI: train, eval (label report / text scores, before and after) and
completing a file of prompts, for the transformer and the LSTM."""

import json

import pytest

from tests.helpers import cli_in_process
from tests.pairs_helpers import tiny_pairs_run


def _train(tmp_path, name, *overrides):
    out = cli_in_process("train", *overrides, f"hydra.run.dir={tmp_path / name}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    return tmp_path / name


@pytest.mark.slow
def test_label_task_eval_writes_the_report_and_before(tmp_path):
    run = tiny_pairs_run(tmp_path, "labels")
    start = _train(tmp_path, "start", *run)
    tuned = _train(tmp_path, "tuned", *run, f"model.init_from={start}", "model.rank_by=val/macro_f1",
                   "model.rank_mode=max")  # fmt: skip
    metrics = (tuned / "metrics.csv").read_text().splitlines()[0]
    assert "val/macro_f1" in metrics and "val/accuracy" in metrics
    assert (tuned / "checkpoints" / "best.ckpt").is_file()
    out = cli_in_process("eval", f"ckpt={tuned}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tuned / "eval.json").read_text())
    for key in ("test/accuracy", "test/macro_f1", "test/weighted_f1", "test/exact_match", "test/loss"):
        assert report[key] >= 0 and key in report["before"], key
    assert report["test/labels_chosen_by"] == "likelihood"
    # the rule is chosen on validation: every rule's validation macro F1 is there, and test used the best
    by_rule = report["val/macro_f1_by_label_scoring"]
    assert {"sum", "mean", "calibrated", "pmi", "prior:1"} <= by_rule.keys()
    assert by_rule[report["test/label_scoring"]] == max(by_rule.values())
    assert set(report["test/classification_report"]["per_label"]) == {"red", "green", "blue"}
    assert (tuned / "confusion_matrix.png").is_file() and (tuned / "confusion_matrix_before.png").is_file()
    assert "macro avg" in out.stdout


@pytest.mark.slow
def test_text_task_with_an_lstm_scores_rouge_and_completes_a_file(tmp_path):
    run = tiny_pairs_run(tmp_path, "text")
    # long_prompts=cut: a prompt longer than the context is completed from its end, in sampling too
    tuned = _train(
        tmp_path, "lstm", *run, "model/lm_net@model.net=lstm", "model.net.n_embd=32", "data.long_prompts=cut"
    )
    out = cli_in_process("eval", f"ckpt={tuned}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tuned / "eval.json").read_text())
    assert {"test/rouge_l", "test/chrf", "test/exact_match", "test/loss"} <= report.keys()
    assert "test/accuracy" not in report
    prompts = tmp_path / "prompts.jsonl"
    long = " ".join(f"cat {i} dog {i}" for i in range(30))
    prompts.write_text(
        f'{{"prompt": "cat 1:", "id": 7}}\n{{"prompt": "dog 2:", "id": 8}}\n{{"prompt": "{long}", "id": 9}}\n'
    )
    preds = tmp_path / "preds.jsonl"
    out = cli_in_process("sample", f"ckpt={tuned}", f"inputs={prompts}", f"out={preds}", "temperature=0",
                         cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert [r["id"] for r in rows] == [7, 8, 9] and all(isinstance(r["prediction"], str) for r in rows)


@pytest.mark.slow
def test_label_task_on_a_hugging_face_network(tmp_path):
    from tests.helpers import write_tiny_hf_model

    folder = write_tiny_hf_model(tmp_path / "hf", "llama")
    run = [o for o in tiny_pairs_run(tmp_path, "labels") if not o.startswith(("model.net.", "data.vocab_size"))]
    tuned = _train(tmp_path, "hf_run", *run, "model/lm_net@model.net=hf", f"model.init_from={folder}")
    out = cli_in_process("eval", f"ckpt={tuned}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tuned / "eval.json").read_text())
    assert "test/macro_f1" in report and "test/macro_f1" in report["before"]


@pytest.mark.slow
def test_a_label_head_trains_and_answers_with_labels_on_each_network(tmp_path):
    """model.head=labels on the transformer, the LSTM and a Hugging Face network: eval scores the
    head (its checkpoint loads with the layer), balanced and logit-adjusted losses train."""
    import torch

    from tests.helpers import write_tiny_hf_model

    run = tiny_pairs_run(tmp_path, "labels")
    hf = write_tiny_hf_model(tmp_path / "hf", "llama")
    networks = {
        "transformer": [*run, "model.label_loss=balanced"],
        "lstm": [*run, "model/lm_net@model.net=lstm", "model.label_loss=logit_adjusted"],
        "hf": [*[o for o in run if not o.startswith(("model.net.", "data.vocab_size"))],
               "model/lm_net@model.net=hf", f"model.init_from={hf}"],
    }  # fmt: skip
    for name, overrides in networks.items():
        tuned = _train(tmp_path, name, *overrides, "model.head=labels", "trainer.max_steps=4")
        out = cli_in_process("eval", f"ckpt={tuned}", cwd=tmp_path)
        assert out.returncode == 0, (name, out.stderr[-3000:])
        report = json.loads((tuned / "eval.json").read_text())
        assert 0 <= report["test/accuracy"] <= 1 and report["test/invalid_labels"] == 0, name
        assert report["test/loss"] > 0, name  # the head's cross-entropy over the labels
        assert "label_head.weight" in torch.load(tuned / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    # it answers with a label (and every label's probability for a file of prompts)
    prompts, preds = tmp_path / "prompts.jsonl", tmp_path / "preds.jsonl"
    prompts.write_text('{"prompt": "item 1 starts re", "id": 1}\n{"prompt": "item 2 starts bl", "id": 2}\n')
    out = cli_in_process("sample", f"ckpt={tmp_path / 'transformer'}", f"inputs={prompts}", f"out={preds}",
                         cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    for row in rows:
        assert row["prediction"] in {"red", "green", "blue"} and set(row["probabilities"]) == {"red", "green", "blue"}
        assert abs(sum(row["probabilities"].values()) - 1) < 1e-4
        assert row["probabilities"][row["prediction"]] == max(row["probabilities"].values())
    out = cli_in_process("sample", f"ckpt={tmp_path / 'transformer'}", 'prompt="item 1 starts re"', "temperature=0",
                         "n=2", f"out={tmp_path / 'one'}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    texts = (tmp_path / "one.txt").read_text()
    assert texts.count(rows[0]["prediction"]) >= 2, texts  # the prompt, then the head's label, in each sample
    # genkit serve answers a completion with the head's label
    from fastapi.testclient import TestClient

    from genkit.checkpoints.files import resolve_checkpoint
    from genkit.serving.app import Settings, build_app
    from genkit.training.restore import load_model

    # the checkpoint `genkit sample ckpt=<run dir>` read
    model, data, _ = load_model(resolve_checkpoint(str(tmp_path / "transformer"), None, "best"))
    app = build_app(model, data, Settings(model_id="tiny", limits={"max_n": 4, "max_tokens": 12, "max_steps": 3}))
    with TestClient(app) as client:
        answer = client.post("/v1/completions", json={"prompt": "item 1 starts re", "temperature": 0, "n": 2})
    assert answer.status_code == 200, answer.text
    assert [c["text"] for c in answer.json()["choices"]] == [rows[0]["prediction"]] * 2


@pytest.mark.slow
def test_lora_on_a_label_task_trains_the_label_rows_and_nothing_else_of_the_embedding(tmp_path):
    import torch

    run = tiny_pairs_run(tmp_path, "labels")
    start = _train(tmp_path, "start", *run)
    tuned = _train(tmp_path, "lora", *run, f"model.init_from={start}", "finetune.lora.r=4", "trainer.max_steps=3")
    before = torch.load(start / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]["net.wte.weight"]
    after = torch.load(tuned / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]["net.wte.weight"]
    changed = set((after != before).any(dim=1).nonzero()[:, 0].tolist())
    assert changed and len(changed) < after.shape[0] // 4, changed  # a few rows: the labels' tokens
    log = (tuned / "genkit.log").read_text()
    assert "the embedding and output rows of the" in log and "tokens the labels are written with" in log


def test_a_tfidf_baseline_is_scored_by_the_same_report(tmp_path):
    from tests.pairs_helpers import write_tiny_pairs

    folder = write_tiny_pairs(tmp_path / "task", "labels")
    out_file = tmp_path / "baseline.json"
    out = cli_in_process("eval", "baseline=tfidf", "data=pairs", f"data.path={folder}", f"out={out_file}",
                         cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out_file.read_text())
    # the prompts name their colour's first letters: words and characters separate them completely
    assert report["test/accuracy"] == 1.0 and report["test/macro_f1"] == 1.0
    assert set(report["test/classification_report"]["per_label"]) == {"red", "green", "blue"}
    assert report["baseline_setting"] in report["val/macro_f1_by_setting"]
    assert "macro avg" in out.stdout and (tmp_path / "baseline_confusion.png").is_file()
