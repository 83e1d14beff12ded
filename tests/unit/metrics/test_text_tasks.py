"""Task scores: the classification report agrees with counts done by hand, text scores bound."""

import pytest

from genkit.metrics.text_tasks import classification_report, report_table, text_scores


def test_classification_report_by_hand():
    refs = ["a", "a", "a", "b", "b", "c"]
    preds = ["a", "a", "b", "b", "zzz", "c"]  # zzz: not a label (generated), counted wrong
    r = classification_report(preds, refs, ["a", "b", "c"])
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["per_label"]["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert r["per_label"]["b"]["precision"] == pytest.approx(0.5) and r["per_label"]["b"]["recall"] == 0.5
    assert r["macro_f1"] == pytest.approx((0.8 + 0.5 + 1.0) / 3)
    assert r["weighted_f1"] == pytest.approx((0.8 * 3 + 0.5 * 2 + 1.0) / 6)
    assert r["invalid"] == 1
    assert r["confusion"][1] == [0, 1, 0, 1]  # b: once right, once invalid
    assert "macro avg" in report_table(r)


def test_text_scores_are_one_for_equal_texts_and_lower_otherwise():
    same = text_scores(["a dog  barks"], ["a dog barks"])
    assert same["rouge_l"] == pytest.approx(1.0) and same["chrf"] == pytest.approx(1.0)
    other = text_scores(["a cat sleeps"], ["a dog barks"])
    assert 0 <= other["rouge_l"] < 1 and 0 <= other["chrf"] < 1
