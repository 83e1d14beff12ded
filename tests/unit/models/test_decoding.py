"""genkit's one generation loop: the same tokens as re-reading every sequence in full, for every
network of the family, alone and when groups join and leave a running batch (continuous batching)."""

import pytest
import torch

from genkit.models.decoding import Decoding, Sampling, generate
from genkit.models.nets.hf_causal_lm import HFCausalLM
from genkit.models.nets.lstm import LSTMLanguageModel
from genkit.models.nets.transformer import Transformer
from genkit.models.sampling import sample_next

VOCAB = 40
NETS = {
    "transformer": lambda: Transformer(vocab_size=VOCAB, block_size=12, n_layer=2, n_head=2, n_embd=16),
    "lstm": lambda: LSTMLanguageModel(vocab_size=VOCAB, block_size=12, n_layer=2, n_embd=16),
    "hf llama": lambda: HFCausalLM(
        vocab_size=VOCAB,
        block_size=12,
        config={
            "model_type": "llama",
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": 12,
        },
    ),  # fmt: skip
}


def net_of(kind: str):
    torch.manual_seed(0)
    return NETS[kind]().eval()


def rereading(net, idx: torch.Tensor, new: int, sampling: Sampling) -> torch.Tensor:
    """The plainest loop: every token re-reads the sequence (its last context_length tokens)."""
    for _ in range(new):
        window = idx if net.context_length is None else idx[:, -net.context_length :]
        logits, _ = net(window)
        s = sampling
        idx = torch.cat([idx, sample_next(logits[:, -1], s.temperature, s.top_k, s.top_p, s.generator)], dim=1)
    return idx


def seeded(temperature: float, seed: int = 0) -> Sampling:
    return Sampling(temperature, top_k=20 if temperature else None, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("temperature", [0.0, 1.0], ids=["greedy", "sampled"])
@pytest.mark.parametrize("kind", NETS)
def test_cached_generation_equals_rereading(kind, temperature):
    net = net_of(kind)
    idx = torch.randint(0, VOCAB, (3, 4), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # 20 new tokens: past the context of 12 where there is one
        expected = rereading(net, idx, 20, seeded(temperature))
        for use_cache in (True, False):
            assert torch.equal(generate(net, idx, 20, seeded(temperature), use_cache), expected)


@pytest.mark.parametrize("kind", NETS)
def test_groups_that_join_and_leave_get_the_tokens_they_get_alone(kind):
    """Three requests of different prompt lengths: one starts, a second joins two tokens later,
    the first leaves, a third joins; each draws what it draws alone (greedy and seeded)."""
    net = net_of(kind)
    g = torch.Generator().manual_seed(2)
    prompts = [torch.randint(0, VOCAB, (n, length), generator=g) for n, length in ((2, 3), (1, 6), (2, 2))]
    temperatures = [0.0, 1.0, 0.7]
    lengths = [5, 7, 6]  # tokens each generates; the second runs past the context of 12
    with torch.no_grad():
        alone = [
            rereading(net, p, n, seeded(t, seed=k))
            for k, (p, n, t) in enumerate(zip(prompts, lengths, temperatures, strict=True))
        ]
        decoding = Decoding(net)
        groups = {}
        joins = {0: 0, 2: 1, 6: 2}  # step -> the request that joins before it
        for step in range(12):
            if decoding.rows:  # the running rows read what they drew
                decoding.advance()
            if step in joins:  # then a request joins: its prompt is read beside them
                k = joins[step]
                assert decoding.can_join
                groups[k] = decoding.add(prompts[k], seeded(temperatures[k], seed=k))
            decoding.sample()
            for k, group in list(groups.items()):
                if group.length == prompts[k].shape[1] + lengths[k]:
                    assert group.tokens == alone[k].tolist(), f"request {k}"
                    decoding.remove(group)
                    del groups[k]
        assert not groups and decoding.rows == 0 and decoding.cache is None


@pytest.mark.parametrize("kind", ["transformer", "hf llama"])
def test_padded_rows_read_the_logits_they_read_alone(kind):
    """Rows of different lengths in one cache: each row's logits equal its own full read."""
    net = net_of(kind)
    a, b = torch.randint(0, VOCAB, (1, 7)), torch.randint(0, VOCAB, (1, 3))
    with torch.no_grad():
        _, cache_a = net(a[:, :-1])
        _, cache_b = net(b[:, :-1])
        joined = cache_a.join(cache_b)
        logits, after = net(torch.cat([a[:, -1:], b[:, -1:]]), joined)
        torch.testing.assert_close(logits[0, -1], net(a)[0][0, -1], atol=1e-5, rtol=0)
        torch.testing.assert_close(logits[1, -1], net(b)[0][0, -1], atol=1e-5, rtol=0)
        # the short row alone again: the padding columns go
        only_b = after.select(torch.tensor([1]))
        assert only_b.lengths.tolist() == [3] and not only_b.padded
