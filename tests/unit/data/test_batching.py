"""Training batches grouped by length: every item once, little padding, resumable, per process."""

import torch

from genkit.data.batching import ShuffledBatches


def _lengths(n: int) -> torch.Tensor:
    return torch.randint(5, 150, (n,), generator=torch.Generator().manual_seed(1))


def _padded_positions(batches, lengths) -> int:
    return sum(len(b) * int(lengths[b].max()) for b in batches)


def test_grouped_batches_hold_every_item_once_and_pad_less():
    n, batch = 3200, 32
    lengths = _lengths(n)
    grouped = list(ShuffledBatches(n, batch, seed=0, lengths=lengths))
    plain = list(ShuffledBatches(n, batch, seed=0))
    assert sorted(i for b in grouped for i in b) == list(range(n))
    assert all(len(b) == batch for b in grouped)
    real = int(lengths.sum())
    # random batches of lengths 5..149 pad to ~145 (about half padding); sorted windows to ~their own
    assert _padded_positions(grouped, lengths) < 1.1 * real < _padded_positions(plain, lengths)
    # the batches are shuffled, not longest first
    longest = [int(lengths[b].max()) for b in grouped]
    assert longest != sorted(longest, reverse=True)


def test_grouped_batches_resume_where_training_stopped_and_change_by_epoch():
    n, batch = 640, 16
    lengths = _lengths(n)
    whole = list(ShuffledBatches(n, batch, seed=3, lengths=lengths))
    resumed = ShuffledBatches(n, batch, seed=3, lengths=lengths)
    resumed.load_state_dict({"epoch": 0, "done": 7})
    assert list(resumed) == whole[7:]
    later = ShuffledBatches(n, batch, seed=3, lengths=lengths)
    later.set_epoch(1)
    assert list(later) != whole


def test_grouped_batches_split_over_processes():
    n, batch, world = 1000, 8, 2
    lengths = _lengths(n)
    shares = [list(ShuffledBatches(n, batch, seed=0, rank=r, world=world, lengths=lengths)) for r in range(world)]
    assert len(shares[0]) == len(shares[1])
    seen = [i for share in shares for b in share for i in b]
    assert len(seen) == len(set(seen))
