"""Whether PyTorch's own FSDP (no Lightning) trains genkit's GPT on 2 CPU processes with gloo.

python scripts/fsdp_cpu_check.py

Lightning's FSDPStrategy refuses CPUs (docs/scaling-out.md says where and with which errors);
this shows that the refusal is Lightning's: FullyShardedDataParallel with device_id=cpu, the
transformer blocks as units, activation checkpointing and a full (consolidated) state dict runs
3 steps and prints whether the gathered keys equal those of the unwrapped network.
"""

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import apply_activation_checkpointing
from torch.distributed.fsdp import FullStateDictConfig, StateDictType
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
from torch.distributed.fsdp.wrap import ModuleWrapPolicy

from genkit.models.nets.transformer import Block, Transformer


def run(rank: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29513")
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = Transformer(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=32)
    plain_keys = sorted(net.state_dict())
    # device_id=cpu: without it (Lightning passes None on CPUs) FSDP stops with "FSDP needs a
    # non-CPU accelerator device, but no accelerator device is detected."
    model = FSDP(net, auto_wrap_policy=ModuleWrapPolicy({Block}), device_id=torch.device("cpu"), use_orig_params=True)
    apply_activation_checkpointing(model, check_fn=lambda m: isinstance(m, Block))
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randint(0, 50, (4, 16))
    for _ in range(3):
        out = model(x)
        logits = out[0] if isinstance(out, tuple) else out
        loss = logits.float().logsumexp(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    full = FullStateDictConfig(rank0_only=True, offload_to_cpu=True)
    with FSDP.state_dict_type(model, StateDictType.FULL_STATE_DICT, full):
        state = model.state_dict()
    if rank == 0:
        print(f"3 FSDP steps on 2 CPU processes (gloo), loss {loss.item():.3f}; consolidated keys equal the plain "
              f"network's: {sorted(state) == plain_keys}")  # fmt: skip
    dist.destroy_process_group()


if __name__ == "__main__":
    mp.spawn(run, nprocs=2)
