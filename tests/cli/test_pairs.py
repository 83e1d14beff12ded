"""data=pairs through the CLI: train, eval (label report / text scores, before and after) and
completing a file of prompts, for the transformer and the LSTM."""

import json

from tests.helpers import cli_in_process
from tests.pairs_helpers import tiny_pairs_run


def _train(tmp_path, name, *overrides):
    out = cli_in_process("train", *overrides, f"hydra.run.dir={tmp_path / name}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    return tmp_path / name


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
    assert set(report["test/classification_report"]["per_label"]) == {"red", "green", "blue"}
    assert (tuned / "confusion_matrix.png").is_file() and (tuned / "confusion_matrix_before.png").is_file()
    assert "macro avg" in out.stdout


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


def test_label_task_on_a_hugging_face_network(tmp_path):
    from tests.helpers import write_tiny_hf_model

    folder = write_tiny_hf_model(tmp_path / "hf", "llama")
    run = [o for o in tiny_pairs_run(tmp_path, "labels") if not o.startswith(("model.net.", "data.vocab_size"))]
    tuned = _train(tmp_path, "hf_run", *run, "model/lm_net@model.net=hf", f"model.init_from={folder}")
    out = cli_in_process("eval", f"ckpt={tuned}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tuned / "eval.json").read_text())
    assert "test/macro_f1" in report and "test/macro_f1" in report["before"]
