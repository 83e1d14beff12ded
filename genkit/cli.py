"""The `genkit` command: `genkit <command> [Hydra overrides]`.

Each command is a Hydra app over configs/<command>.yaml, so every command takes overrides,
`-m` sweeps, `--cfg job` and `--help`. Errors caused by user input are printed as one
paragraph and exit with status 2.
"""

import importlib
import logging
import os
import sys
from collections.abc import Callable

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException, OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig
from rich.console import Console
from rich.text import Text

from genkit.commands.before_hydra import check_command_line, config_dirs
from genkit.commands.job_env import pin_relaunch_argv, reset_ddp_env
from genkit.commands.unknown_keys import composition_error
from genkit.config_files import CONFIG_DIR
from genkit.errors import GenkitError
from genkit.training.config import register_resolvers

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


class FullErrorsWhileComposing:
    """HYDRA_FULL_ERROR=1 from the start of a command until its job starts (or composing fails).

    Hydra prints its own two-part message for an override it cannot apply (advising `+key=` for
    a typo) and exits 1; with full errors it raises instead, and main() answers in one paragraph.
    Errors of the job itself are reported as before, so the job ends the mode when it starts.
    Not in a sweep: its jobs may run elsewhere (SLURM) and never start in this process."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and "HYDRA_FULL_ERROR" not in os.environ

    def __enter__(self) -> "FullErrorsWhileComposing":
        if self.enabled:
            os.environ["HYDRA_FULL_ERROR"] = "1"
        return self

    def end(self) -> None:
        if self.enabled:
            os.environ.pop("HYDRA_FULL_ERROR", None)
            self.enabled = False

    def __exit__(self, *exc) -> None:
        self.end()


def _task(command: str, fn: Callable[[DictConfig], object], composing: FullErrorsWhileComposing, program: str):
    started_in = os.getpid()

    def task(cfg: DictConfig):
        composing.end()
        register_resolvers()  # a job that submitit unpickles on a SLURM node never went through main()
        # there, keep that process's own program name for a DDP relaunch
        pin_relaunch_argv(command, program if os.getpid() == started_in else sys.argv[0])
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
    try:
        check_command_line(command, args[1:])
    except GenkitError as err:
        fail(str(err), err.exit_code)
    register_resolvers()
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
    program = sys.argv[0]
    sys.argv = [program, *args[1:]]
    multirun = "-m" in args or "--multirun" in args
    with FullErrorsWhileComposing(not multirun) as composing:
        app = hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=command)(
            _task(command, fn, composing, program)
        )
        try:
            app()
        except (ConfigCompositionException, OverrideParseException) as err:
            fail(composition_error(command, err))


if __name__ == "__main__":
    main()
