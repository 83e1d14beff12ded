"""What `genkit <command>` checks before Hydra composes its config and PyTorch is imported: a
group option that does not exist, a run directory that cannot be written or belongs to a run in
progress. Each check raises a one-paragraph GenkitError. The overrides are read by Hydra's own
parser (OverridesParser), so the checks see what Hydra will apply; a line Hydra's grammar refuses
is left for Hydra to report.
"""

import importlib.util
import os
import tempfile
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Override
from hydra.errors import OverrideParseException

from genkit.config_files import CONFIG_DIR
from genkit.errors import GenkitError
from genkit.runs.lock import check_free, holds_lock


def check_command_line(command: str, args: list[str]) -> None:
    overrides = parse_overrides(args)
    if overrides is None:
        return
    multirun = "-m" in args or "--multirun" in args
    check_group_choices(command, overrides, config_dirs(args, overrides))
    values = plain_values(overrides)
    check_run_dir_writable(command, values, multirun)
    check_run_dir_free(command, values, multirun)


def parse_overrides(args: list[str]) -> list[Override] | None:
    """The key=value overrides among the arguments (flags such as -m or --cfg job left out), or
    None when Hydra's grammar refuses one (Hydra then says why, in its own words)."""
    lines = [a for a in args if "=" in a and not a.startswith("-")]
    try:
        return OverridesParser.create().parse_overrides(lines)
    except OverrideParseException:
        return None


def plain_values(overrides: list[Override]) -> dict[str, object]:
    """key -> value of the overrides that set one value (not sweeps, not deletions)."""
    return {o.key_or_group: o.value() for o in overrides if not o.is_sweep_override() and not o.is_delete()}


def config_dirs(args: list[str], overrides: list[Override] | None = None) -> list[Path]:
    """genkit's config folder plus the user's: `--config-dir D` (`-cd D`) and file:// or pkg://
    entries of a `hydra.searchpath=[...]` override, as Hydra will search them."""
    dirs = [CONFIG_DIR]
    for i, arg in enumerate(args):
        if arg in ("--config-dir", "-cd") and i + 1 < len(args):
            dirs.append(Path(args[i + 1]).expanduser())
        elif arg.startswith("--config-dir="):
            dirs.append(Path(arg.partition("=")[2]).expanduser())
    overrides = parse_overrides(args) if overrides is None else overrides
    searchpath = plain_values(overrides or []).get("hydra.searchpath")
    for entry in searchpath if isinstance(searchpath, list) else []:
        scheme, _, where = str(entry).partition("://")
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


def check_group_choices(command: str, overrides: list[Override], dirs: list[Path]) -> None:
    """Refuse `group=option` for an option that does not exist, listing the ones that do (in
    genkit's configs and the user's). Hydra would report it too, but in a dozen lines of search
    paths; a user who typed `model=nope` needs the list of models."""
    for o in overrides:
        group = o.key_or_group  # model/lm_net@model.net: the group model/lm_net, placed at model.net
        group_dirs = [d / group for d in dirs if (d / group).is_dir()]
        if "." in group or group == "hydra" or not group_dirs or o.is_delete():
            continue
        value = o.value()
        if o.is_sweep_override():
            if not isinstance(value, ChoiceSweep):  # glob(...), range(...): Hydra expands them
                continue
            choices = list(o.sweep_string_iterator())
        else:
            choices = value if isinstance(value, list) else [value]  # logger=[a,b]
        choices = [str(c) for c in choices if c not in (None, "", "null")]
        available = sorted({p.stem for d in group_dirs for p in d.glob("*.yaml")})
        unknown = [c for c in choices if c not in available]
        if unknown:
            key = group if o.package is None else f"{group}@{o.package}"
            raise GenkitError(
                f"unknown {key} {unknown[0]!r} in `{o.input_line}`. Available {key} options: "
                f"{', '.join(available)}. See `genkit {command} --help`."
            )


def check_run_dir_writable(command: str, values: dict[str, object], multirun: bool) -> None:
    """`genkit train` and `bench` write a run directory: say so plainly if they cannot (Hydra
    would stop with a traceback from os.mkdir)."""
    if command not in ("train", "bench"):
        return
    where = values.get("hydra.sweep.dir" if multirun else "hydra.run.dir") or values.get("paths.log_dir")
    where = Path(str(where or os.environ.get("GENKIT_OUTPUT_DIR") or "outputs")).expanduser()
    if "$" in str(where):  # an interpolation: Hydra resolves it
        return
    existing = next((p for p in (where, *where.parents) if p.exists()), Path("."))
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is a file")
        tempfile.TemporaryDirectory(dir=existing).cleanup()
    except OSError as err:
        raise GenkitError(
            f"genkit {command} cannot create its run directory under {where} ({type(err).__name__}: "
            f"{err.strerror or err}). Pass hydra.run.dir=<a folder you can write> or set GENKIT_OUTPUT_DIR."
        ) from None


def check_run_dir_free(command: str, values: dict[str, object], multirun: bool) -> None:
    """`genkit train hydra.run.dir=<a run in progress>`: refused before Hydra writes its config and
    log into that run's folder (the lock itself is taken in train_job, genkit.runs.lock)."""
    if command != "train" or multirun or values.get("wait") is True:
        return
    where = values.get("hydra.run.dir")
    if where and "$" not in str(where) and holds_lock():
        check_free(Path(str(where)).expanduser())
