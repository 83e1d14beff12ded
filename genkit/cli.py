"""The `genkit` command: `genkit <command> [Hydra overrides]`.

Each command is a Hydra app over configs/<command>.yaml, so every command takes overrides,
`-m` sweeps, `--cfg job` and `--help`. Errors caused by user input are printed as one
paragraph and exit with status 2.
"""

import importlib
import importlib.util
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException, OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig, read_write
from rich.console import Console
from rich.text import Text

from genkit.commands.unknown_keys import composition_error
from genkit.config_files import CONFIG_DIR
from genkit.errors import GenkitError
from genkit.runs.lock import check_free, holds_lock
from genkit.training.config import user_config_args  # also registers the config resolvers

# command -> (function taking the composed config, one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("genkit.commands.train:train_job", "train a model (default: the GAN on MNIST)"),
    "sample": ("genkit.commands.sample:sample", "generate from a trained checkpoint"),
    "eval": ("genkit.commands.evaluate:evaluate", "score a checkpoint: test metrics, FID / IS for images"),
    "prepare": ("genkit.commands.prepare:prepare", "write a data set as shards that training runs stream (any size)"),
    "export": ("genkit.commands.export:export", "write a run's model for genkit, transformers, diffusers or ONNX"),
    "bench": ("genkit.commands.bench:bench", "time a training configuration (and the hand-written loop beside it)"),
    "serve": ("genkit.commands.serve:serve", "a trained model behind an HTTP API, with a page to try it at /"),
}
# commands that read run directories and take plain arguments (no Hydra config)
PLAIN_COMMANDS: dict[str, tuple[str, str]] = {
    "runs": ("genkit.commands.runs:list_runs", "list the runs under ./outputs: status, steps, best metric (--json)"),
    "plot": (
        "genkit.commands.runs:plot_command",
        "several runs on one chart: genkit plot <runs or sweep> metric=val/loss",
    ),
}

USAGE = """usage: genkit <command> [key=value ...] [-m] [--cfg job] [--help]

commands:
{commands}

Every command composes its config from groups (model=gan data=mnist ...) and takes Hydra
overrides; `genkit <command> --help` lists the groups and their options.

examples:
  genkit train model=gan data=mnist
  genkit train experiment=gan_mnist trainer.max_epochs=10
  genkit sample ckpt=outputs/gan_mnist/<time>/checkpoints/last.ckpt n=64 out=grid.png
  genkit train -m model.optimizer_g.lr=1e-4,2e-4
"""

# the command line as typed; Hydra is handed argv without the command name
_ARGV: list[str] = []
# what Lightning's DDP launcher writes into os.environ of the process that starts the ranks
_DDP_ENV_KEYS = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", "PL_GLOBAL_SEED")
_START_ENV = {key: os.environ.get(key) for key in _DDP_ENV_KEYS}


def reset_ddp_env() -> None:
    """Undo what the previous job of a sweep left in os.environ.

    Lightning's DDP launcher sets LOCAL_RANK, WORLD_SIZE, ... in the process that starts the
    ranks; the next job of the same sweep would take them for an external launcher's and wait
    for ranks nobody starts. Values that were there when genkit started (torchrun, SLURM, a
    relaunched rank) are kept.
    """
    for key, value in _START_ENV.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    torch = sys.modules.get("torch")  # not imported yet: no process group to end
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def pin_relaunch_argv(command: str) -> None:
    """Make processes that Lightning relaunches (DDP) re-enter exactly this job.

    Lightning restarts `sys.argv` plus `hydra.run.dir=<HydraConfig run.dir>` in each extra
    rank. Inside a sweep (`-m`) that would rerun the whole sweep in every rank, in a fresh
    run directory; so argv becomes this job's own overrides and run.dir this job's directory.
    """
    hydra_cfg = HydraConfig.get()
    # a job that submitit unpickles on a SLURM node never went through main(): keep its argv[0]
    program = _ARGV[0] if _ARGV else sys.argv[0]
    sys.argv = [program, command, *user_config_args(hydra_cfg), *hydra_cfg.overrides.task]
    with read_write(hydra_cfg):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir


def config_dirs(args: list[str]) -> list[Path]:
    """genkit's config folder plus the user's: `--config-dir D` (`-cd D`) and file:// or pkg://
    entries of a `hydra.searchpath=[...]` override, as Hydra will search them."""
    dirs = [CONFIG_DIR]
    for i, arg in enumerate(args):
        if arg in ("--config-dir", "-cd") and i + 1 < len(args):
            dirs.append(Path(args[i + 1]).expanduser())
        elif arg.startswith("--config-dir="):
            dirs.append(Path(arg.partition("=")[2]).expanduser())
        elif arg.lstrip("+").startswith("hydra.searchpath="):
            for entry in arg.partition("=")[2].strip("[]").split(","):
                scheme, _, where = entry.strip().strip("'\"").partition("://")
                if scheme == "file":
                    dirs.append(Path(where).expanduser())
                elif scheme == "pkg":
                    try:
                        spec = importlib.util.find_spec(where.replace("/", "."))
                    except ModuleNotFoundError:
                        spec = None
                    if spec is not None:  # a missing package is Hydra's to report
                        dirs.extend(Path(p) for p in spec.submodule_search_locations or [])
    return dirs


def check_group_choices(command: str, args: list[str]) -> None:
    """Reject `group=option` for an option that does not exist, listing the ones that do (in
    genkit's configs and the user's).

    Hydra would report this too, but in a dozen lines of search paths; a user who typed
    `model=nope` needs the list of models.
    """
    dirs = config_dirs(args)
    for override in args:
        key, sep, value = override.lstrip("+~").partition("=")
        group = key.partition("@")[0]  # model/lm_net@model.net: the group model/lm_net, placed at model.net
        group_dirs = [d / group for d in dirs if (d / group).is_dir()]
        if not sep or "." in group or key == "hydra" or not group_dirs or value in ("", "null"):
            continue
        if value.startswith("[") and value.endswith("]"):  # a list of options: logger=[tensorboard,wandb]
            value = value[1:-1]
        if any(c in value for c in "()[]{}*"):  # sweep functions such as choice(...) or glob(...)
            continue
        available = sorted({p.stem for d in group_dirs for p in d.glob("*.yaml")})
        unknown = [v for v in value.split(",") if v not in available]
        if unknown:
            fail(
                f"unknown {key} {unknown[0]!r} in `{override}`. Available {key} options: "
                f"{', '.join(available)}. See `genkit {command} --help`."
            )


def check_run_dir_writable(command: str, args: list[str]) -> None:
    """`genkit train` and `bench` write a run directory: say so plainly if they cannot (Hydra
    would stop with a traceback from os.mkdir)."""
    if command not in ("train", "bench"):
        return
    values = dict(a.lstrip("+").split("=", 1) for a in args if "=" in a and not a.startswith("-"))
    multirun = "-m" in args or "--multirun" in args
    where = values.get("hydra.sweep.dir" if multirun else "hydra.run.dir") or values.get("paths.log_dir")
    where = Path(where or os.environ.get("GENKIT_OUTPUT_DIR") or "outputs").expanduser()
    if "$" in str(where):  # an interpolation: Hydra resolves it
        return
    existing = next((p for p in (where, *where.parents) if p.exists()), Path("."))
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is a file")
        tempfile.TemporaryDirectory(dir=existing).cleanup()
    except OSError as err:
        fail(
            f"genkit {command} cannot create its run directory under {where} ({type(err).__name__}: "
            f"{err.strerror or err}). Pass hydra.run.dir=<a folder you can write> or set GENKIT_OUTPUT_DIR."
        )


def check_run_dir_free(command: str, args: list[str]) -> None:
    """`genkit train hydra.run.dir=<a run in progress>`: refused before Hydra writes its config and
    log into that run's folder (the lock itself is taken in train_job, genkit.runs.lock)."""
    values = dict(a.lstrip("+").split("=", 1) for a in args if "=" in a and not a.startswith("-"))
    if command != "train" or "-m" in args or "--multirun" in args or values.get("wait") == "true":
        return
    where = values.get("hydra.run.dir")
    if where and "$" not in where and holds_lock():
        try:
            check_free(Path(where).expanduser())
        except GenkitError as err:
            fail(str(err), err.exit_code)


def _genkit_cause(err: BaseException | None) -> GenkitError | None:
    """The GenkitError behind err, also when a library wrapped it (e.g. a config resolver's); a
    config value the user must give (`???`, e.g. data.path) becomes one too."""
    from omegaconf.errors import MissingMandatoryValue

    while err is not None:
        if isinstance(err, GenkitError):
            return err
        if isinstance(err, MissingMandatoryValue):
            key = getattr(err, "full_key", None) or "a config value"
            return GenkitError(f"{key} has no value and this command needs one: pass {key}=<value> (see the "
                               f"comments of its config, `genkit train --cfg job` prints it).")  # fmt: skip
        err = err.__cause__ or err.__context__
    return None


def fail(message: str, exit_code: int = 2) -> None:
    # the message as written (its brackets are not markup); wrapped on a terminal only, so that
    # paths in logs stay whole
    console = Console(stderr=True, soft_wrap=not sys.stderr.isatty())
    console.print(Text.assemble(("genkit: ", "bold red"), message), highlight=False)
    sys.exit(exit_code)


# [whether main() set HYDRA_FULL_ERROR for the composition of the config]
_COMPOSING: list[bool] = []


def _end_composing() -> None:
    if _COMPOSING and _COMPOSING.pop():
        os.environ.pop("HYDRA_FULL_ERROR", None)


def _task(command: str, fn: Callable[[DictConfig], object]) -> Callable[[DictConfig], object]:
    def task(cfg: DictConfig):
        _end_composing()  # errors of the job itself are reported as before
        pin_relaunch_argv(command)
        reset_ddp_env()
        try:
            return fn(cfg)
        except Exception as err:
            cause = _genkit_cause(err)
            if cause is None:
                raise
            if HydraConfig.get().mode == RunMode.MULTIRUN:
                # one failed job (a diverging trial, say) must not end the sweep: Hydra records it
                logging.getLogger("genkit").error("job failed: %s", cause)
                raise cause from None
            fail(str(cause), cause.exit_code)

    return task


def main() -> None:
    from genkit.quiet import quiet_libraries

    quiet_libraries()

    args = sys.argv[1:]
    listing = "\n".join(f"  {name:<8} {desc}" for name, (_, desc) in {**COMMANDS, **PLAIN_COMMANDS}.items())
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE.format(commands=listing))
        return
    if args[0] == "--version":
        from genkit import __version__

        print(f"genkit {__version__}")
        return
    command = args[0]
    if command in PLAIN_COMMANDS:
        module, _, name = PLAIN_COMMANDS[command][0].partition(":")
        if any(a in ("-h", "--help") for a in args[1:]):
            print(importlib.import_module(module).__dict__[f"{command.upper()}_USAGE"])
            return
        try:
            getattr(importlib.import_module(module), name)(args[1:])
        except GenkitError as err:
            fail(str(err), err.exit_code)
        return
    if command not in COMMANDS:
        names = ", ".join({**COMMANDS, **PLAIN_COMMANDS})
        fail(f"unknown command {command!r}. Commands: {names}. See `genkit --help`.")
    # a typo is answered before torch and Lightning are imported (seconds on a busy machine)
    check_group_choices(command, args[1:])
    check_run_dir_writable(command, args[1:])
    check_run_dir_free(command, args[1:])
    module, _, name = COMMANDS[command][0].partition(":")
    if command == "eval":  # its first output would otherwise wait for PyTorch and Lightning (5-8 s)
        print("genkit eval: starting (importing PyTorch and Lightning, then the checkpoint and data)", file=sys.stderr,
              flush=True)  # fmt: skip
    from genkit.training.cpu_allocator import tune_cpu_allocator

    tune_cpu_allocator()  # before PyTorch allocates (a SLURM job, started elsewhere, calls it in train)
    command_module = importlib.import_module(module)
    # after the checks above: the families' declarations import PyTorch and Lightning
    from genkit.commands.command_options import register as register_options

    fn = getattr(command_module, name)
    # the command's options and its families', each from its one declaration (genkit.options)
    register_options(command, COMMANDS[command][1], command_module.OPTIONS, config_dirs(args[1:]))
    _ARGV[:] = sys.argv
    sys.argv = [sys.argv[0], *args[1:]]
    app = hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=command)(_task(command, fn))
    # Hydra prints its own two-part message for an override it cannot apply (advising `+key=` for a
    # typo) and exits 1: let the error through until the job starts (_task), to answer it here. Not
    # in a sweep: its jobs may run elsewhere (SLURM) and never pass through _task in this process
    multirun = "-m" in args or "--multirun" in args
    _COMPOSING[:] = ["HYDRA_FULL_ERROR" not in os.environ and not multirun]
    if _COMPOSING[0]:
        os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        app()
    except (ConfigCompositionException, OverrideParseException) as err:
        fail(composition_error(command, err))
    finally:
        _end_composing()


if __name__ == "__main__":
    main()
