"""Completing prompts: generation stops at end-of-text, label likelihoods match a plain loop."""

import pytest
import torch

from genkit.models.completion import candidate_logprobs, complete
from genkit.models.decoding import Sampling, generate
from genkit.models.nets.lstm import LSTMLanguageModel
from genkit.models.nets.transformer import Transformer

NETS = {
    "transformer": lambda: Transformer(vocab_size=20, block_size=16, n_layer=1, n_head=2, n_embd=16),
    "lstm": lambda: LSTMLanguageModel(vocab_size=20, block_size=16, n_layer=1, n_embd=16),
}


class WithoutCache:
    """A network of the protocol without repeat_cache: every prompt is read with every label."""

    def __init__(self, net):
        self.net, self.lm_head, self.hidden, self.parameters = net, net.lm_head, net.hidden, net.parameters


@pytest.mark.parametrize("labels", [[[8, 0], [9, 10, 0]], [[8], [9]]], ids=["labels of 2-3 ids", "one id each"])
@pytest.mark.parametrize("cached", [True, False], ids=["prompt read once", "prompt read per label"])
@pytest.mark.parametrize("kind", NETS)
def test_label_logprobs_match_one_sequence_at_a_time(kind, cached, labels):
    torch.manual_seed(0)
    net = NETS[kind]().eval()
    prompts = [[0, 3, 4], [0, 5], [0, 6, 7], [0, 1, 2]]
    scores = candidate_logprobs(net if cached else WithoutCache(net), prompts, labels)
    for i, p in enumerate(prompts):
        for k, c in enumerate(labels):
            seq = torch.tensor([p + c])
            logp = net(seq[:, :-1])[0].log_softmax(-1)[0]
            expected = sum(logp[len(p) - 1 + t, tok] for t, tok in enumerate(c))
            assert scores[i, k].item() == pytest.approx(expected.item(), abs=1e-4)


@pytest.mark.parametrize("kind", NETS)
def test_generation_stops_at_end_of_text_and_matches_greedy(kind):
    torch.manual_seed(0)
    net = NETS[kind]().eval()
    with torch.no_grad():  # make token 0 (end-of-text) likely after token 5, so some rows end early
        net.lm_head.weight[0] += 0.5 * net.lm_head.weight[5]
    prompts = [[0, 5, 5], [0, 1], [0, 2, 3]]
    out = complete(net, prompts, 0, max_new_tokens=6)
    for p, ids in zip(prompts, out, strict=True):
        assert 0 not in ids and len(ids) <= 6
        full = generate(net, torch.tensor([p]), 6, Sampling(temperature=0.0))[0, len(p) :].tolist()
        assert ids == (full[: full.index(0)] if 0 in full else full)
