"""`genkit prepare`: a data set written as shards (genkit.data.shards) for training runs that
stream their own part of it, on one machine or many: token streams (read by data=text_shards),
pictures (data=image_shards) and prompt -> completion records (data=pairs_shards).

The data set is first prepared as `genkit train` prepares it (text tokenised into its cache in
worker processes, pictures decoded into theirs, records encoded into rows), then copied into
LitData chunks a piece at a time, so memory holds a piece, not the set. The shards are written
into a hidden folder beside out= and renamed into place when whole, with their description
written last: an interrupted or failed preparation leaves no folder a run would take for shards.
"""

import hashlib
import importlib
import json
import logging
import os
import shutil
from pathlib import Path

from omegaconf import DictConfig

from genkit.atomic import is_full_disk
from genkit.commands.command_options import check_options
from genkit.data.shards import META, is_remote, write_meta
from genkit.errors import GenkitError
from genkit.options import BOOLEAN, Option
from genkit.training.build import build_datamodule

log = logging.getLogger("genkit")

OPTIONS = {
    "out": Option(None, "the folder to write the shards into (required); copy it to object storage to train "
                  "from there", shown="out=<folder>"),
    "overwrite": Option(False, "replace out= when it holds shards written before (any other folder is refused)",
                        BOOLEAN),
    "seed": Option(12345, "the seed data configs read (a picture folder's validation split follows data.split_seed)"),
}  # fmt: skip


def prepare(cfg: DictConfig) -> Path:
    check_options("prepare", cfg, OPTIONS)
    if not cfg.out:
        raise GenkitError(
            "genkit prepare needs out=<folder>: where to write the shards, e.g. out=shards/shakespeare. To train "
            "from object storage, copy that folder there afterwards (e.g. `aws s3 sync`)."
        )
    if is_remote(cfg.out):
        raise GenkitError(
            f"out={cfg.out}: genkit prepare writes to a folder on this machine; write the shards there, copy the "
            f"folder to {cfg.out} (e.g. `aws s3 sync <folder> {cfg.out}`), and train with data.path={cfg.out}."
        )
    out = Path(cfg.out).expanduser().absolute()
    _check_out(out, bool(cfg.overwrite))
    datamodule = build_datamodule(cfg)
    # what this data set is written as (its contract: GenkitDataModule.shards), or one paragraph
    kind, writer, config = datamodule.shard_writer()
    datamodule.prepare_data()
    datamodule.setup("fit")
    datamodule.setup("test")
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        module, _, name = writer.partition(":")
        meta = getattr(importlib.import_module(module), name)(datamodule, partial)
        meta.update(kind=kind, data=datamodule.name, fingerprint=_fingerprint(partial, meta))
        write_meta(partial, meta)
    except OSError as error:
        shutil.rmtree(partial, ignore_errors=True)
        if not is_full_disk(error):
            raise
        raise GenkitError(
            f"The disk holding {out.parent} filled up while genkit was writing the shards of {datamodule.name}; "
            f"the unfinished shards were removed. Free some space, or give out= a folder on a larger disk, and run "
            f"genkit prepare again."
        ) from None
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out.exists():  # an earlier preparation (checked above), replaced as asked
        shutil.rmtree(out)
    os.replace(partial, out)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(
        f"genkit prepare: {datamodule.name} as shards of {kind} in {out} ({size / 2**20:,.1f} MB; "
        f"{', '.join(f'{split} {count:,}' for split, count in meta['splits'].items())}).\n"
        f"Train on them with: genkit train data={config} data.path={out}",
        flush=True,
    )
    return out


def _check_out(out: Path, overwrite: bool) -> None:
    """out= is new, empty, or (with overwrite=true) shards written before: nothing else is replaced."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not (out / META).is_file():
        raise GenkitError(
            f"out={out} exists and does not hold shards written by genkit prepare; genkit replaces nothing else. "
            f"Give a new folder."
        )
    if not overwrite:
        raise GenkitError(f"out={out} already holds shards; pass overwrite=true to write them again, or a new folder.")


def _fingerprint(folder: Path, meta: dict) -> str:
    """What tells these shards from others: their training index (chunk names, sizes, item counts)
    and what they hold; the same preparation twice gives the same fingerprint."""
    digest = hashlib.sha256()
    for split in sorted(p for p in folder.iterdir() if p.is_dir()):
        index = json.loads((split / "index.json").read_text())
        index.pop("updated_at", None)  # when LitData wrote it: the same data written again is the same
        digest.update(json.dumps(index, sort_keys=True).encode())
    digest.update(repr(sorted((k, repr(v)) for k, v in meta.items())).encode())
    return digest.hexdigest()[:16]
