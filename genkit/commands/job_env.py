"""What a job of `genkit <command>` repairs in its process before it runs: the environment a
previous job of the same sweep left behind (Lightning's DDP launcher), and the command line that
Lightning relaunches for its extra DDP ranks."""

import os
import sys

from hydra.core.hydra_config import HydraConfig
from omegaconf import read_write

from genkit.training.config import user_config_args

# what Lightning's DDP launcher writes into os.environ of the process that starts the ranks
DDP_ENV_KEYS = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", "PL_GLOBAL_SEED")
# their values when genkit started (torchrun, SLURM, a relaunched rank): read once, never changed
START_ENV = {key: os.environ.get(key) for key in DDP_ENV_KEYS}


def reset_ddp_env() -> None:
    """Undo what the previous job of a sweep left in os.environ.

    Lightning's DDP launcher sets LOCAL_RANK, WORLD_SIZE, ... in the process that starts the
    ranks; the next job of the same sweep would take them for an external launcher's and wait
    for ranks nobody starts. Values that were there when genkit started are kept.
    """
    for key, value in START_ENV.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    torch = sys.modules.get("torch")  # not imported yet: no process group to end
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def pin_relaunch_argv(command: str, program: str) -> None:
    """Make processes that Lightning relaunches (DDP) re-enter exactly this job.

    Lightning restarts `sys.argv` plus `hydra.run.dir=<HydraConfig run.dir>` in each extra
    rank. Inside a sweep (`-m`) that would rerun the whole sweep in every rank, in a fresh
    run directory; so argv becomes this job's own overrides and run.dir this job's directory.
    """
    hydra_cfg = HydraConfig.get()
    sys.argv = [program, command, *user_config_args(hydra_cfg), *hydra_cfg.overrides.task]
    with read_write(hydra_cfg):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
