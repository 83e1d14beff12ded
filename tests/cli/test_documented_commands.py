"""Every `genkit ...` command that README.md and the pages of docs/ show runs as written.

The commands are read from the Markdown: the lines of code blocks that start with `genkit ` or
`$ genkit ` (after any `NAME=value` environment settings), joined over trailing backslashes, with
comments after `#` dropped, and the commands that open a table cell (`| `genkit ...` |`).
`genkit train`, `sample`, `eval`, `export`, `bench` and `serve` run with `--cfg job --resolve`
(a sweep's `-m` dropped, its first value kept): the config is composed and its interpolations
resolved, so a renamed key, option or group option fails here, and nothing trains or serves.
`genkit runs`, `genkit plot` and `--help` run for real, on made-up run directories. A command
shown with the error it prints (`$ genkit ...`, then a `genkit: ...` line) must fail with that
error.

Placeholders such as `<run>` or `<run dir or .ckpt>` become paths in the test's folder, except
those of language-model runs, whose sizes and tokenizer a config reads when it is resolved: they become the
fixture language-model run of tests/fixtures/.
"""

import re
import shlex
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from tests.helpers import REPO, cli_in_process

PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
COMPOSED = {"train", "sample", "eval", "prepare", "export", "bench", "serve"}
# Commands whose config cannot be resolved here: they are composed with `--cfg job` alone (their
# keys are still checked), each with its reason. Composing needs no GPU or cluster (trainer=gpu,
# trainer=ddp and launcher=slurm compose anywhere), so what is left needs a network or a user's files.
HUB = "GPT-2's sizes and tokenizer come from the Hugging Face hub (a network)"
PICTURES = "the user's own pictures: the classes of the folder are read when the config is resolved"
SHARDS = "shards genkit prepare wrote: their description (vocabulary, picture size) is read when the config is resolved"
EXCEPTIONS: dict[str, str] = {
    "genkit train model=lm model.init_from=gpt2 data=text data.path=notes.txt": HUB,
    "genkit train model=lm model.init_from=gpt2 finetune.lora.r=8 data=text data.path=my_texts/ "
    "data.block_size=256 trainer=gpu": HUB,
    # docs/hugging-face-models.md: the architecture and tokenizer come from the hub
    "genkit train model=lm model/lm_net@model.net=hf model.init_from=HuggingFaceTB/SmolLM2-135M data=text "
    "data.path=notes.txt": HUB,
    "genkit train model=lm model/lm_net@model.net=hf model.init_from=Qwen/Qwen2.5-0.5B finetune.lora.r=16 "
    "data=text data.path=notes.txt trainer=gpu": HUB,
    "genkit train model=lm model/lm_net@model.net=hf model.init_from=EleutherAI/pythia-70m "
    "model.net.gradient_checkpointing=true data=text data.path=notes.txt": HUB,
    "genkit train model=diffusion data=image_folder data.path=$HOME/photos": PICTURES,
    "genkit prepare data=image_folder data.path=$HOME/photos data.image_size=64 out=shards/photos": PICTURES,
    "genkit train model=lm data=text_shards data.path=shards/shakespeare": SHARDS,
    "genkit train model=lm data=text_shards data.path=/tmp/tb/shards_1000MB trainer.max_steps=1 "
    "trainer.max_epochs=1 ++trainer.limit_val_batches=2": SHARDS,
    "genkit train model=lm data=text_shards data.path=shards/shakespeare trainer=ddp_cpu": SHARDS,
    "genkit train model=diffusion data=image_shards data.path=shards/photos data.augment=[hflip]": SHARDS,
    "genkit train model=lm data=pairs_shards data.path=shards/my_task": SHARDS,
    "genkit train model=lm data=text_shards data.path=[shards/web,shards/books] data.mix=[3,1]": SHARDS,
    "genkit train model=lm data=text_shards data.path=s3://my-bucket/shards/shakespeare trainer=ddp": SHARDS,
    "genkit train model=gan model.conditional=true data=image_folder data.path=$HOME/photos "
    "data.image_size=32": PICTURES,
}
# placeholders of language-model runs: a config resolved with model.init_from (or data.pretrained_tokenizer)
# reads the run's network sizes and tokenizer
GPT_RUN = REPO / "tests" / "fixtures" / "checkpoints_14332b0" / "gpt"
LM_PLACEHOLDERS = ("lm run", "pre-training run")

_ENV = r"(?:[A-Z_][A-Z0-9_]*=\S+\s+)*"
COMMAND_LINE = re.compile(rf"^(?:\$\s+)?({_ENV}genkit(?:\s.*)?)$")
TABLE_COMMAND = re.compile(r"\|\s*`(genkit\s[^`]+)`")
PLACEHOLDER = re.compile(r"<([^<>\n]+)>")
VARIABLE = re.compile(r"\$(\w+)")
# a code block that opens with `# my_project/<path>` is a file of the add-your-own-family walk-through
WALKTHROUGH_FILE = re.compile(r"^#\s*(my_project/\S+)\s*$")


def _code_blocks(text: str) -> list[list[tuple[int, str]]]:
    """The code blocks of a Markdown text, each a list of (line number, line)."""
    blocks, block = [], None
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            if block is None:
                block = []
            else:
                blocks.append(block)
                block = None
        elif block is not None:
            block.append((number, line))
    return blocks


def _strip_comment(line: str) -> str:
    """The line without a trailing `# comment` (a `#` outside quotes that starts a word)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def documented_commands() -> dict[str, dict]:
    """{command as written: {"where": file:line, "error": the error it is shown with, or None}}."""
    found: dict[str, dict] = {}
    for page in PAGES:
        text, name = page.read_text(), page.relative_to(REPO)
        for number, line in enumerate(text.splitlines(), 1):
            if line.lstrip().startswith("|"):
                for command in TABLE_COMMAND.findall(line):
                    found.setdefault(" ".join(command.split()), {"where": f"{name}:{number}", "error": None})
        for block in _code_blocks(text):
            lines: list[tuple[int, str]] = []  # continuation lines joined
            for number, line in block:
                if lines and lines[-1][1].endswith("\\"):
                    lines[-1] = (lines[-1][0], lines[-1][1][:-1].rstrip() + " " + line.strip())
                else:
                    lines.append((number, line.strip()))
            for i, (number, line) in enumerate(lines):
                match = COMMAND_LINE.match(_strip_comment(line))
                if not match:
                    continue
                following = lines[i + 1][1] if i + 1 < len(lines) else ""
                error = following if line.startswith("$") and following.startswith("genkit: ") else None
                found.setdefault(" ".join(match.group(1).split()), {"where": f"{name}:{number}", "error": error})
    return found


COMMANDS = documented_commands()


def _walkthrough_files(root: Path) -> None:
    """The files of the add-your-own-family walk-through, written as the docs show them."""
    for page in PAGES:
        for block in _code_blocks(page.read_text()):
            match = WALKTHROUGH_FILE.match(block[0][1].strip()) if block else None
            if match:
                path = root / match.group(1)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("\n".join(line for _, line in block[1:]) + "\n")


def _made_up_runs(folder: Path) -> None:
    """Two finished runs (a sweep over the learning rate) with the records genkit runs and plot read."""
    for i, lr in enumerate(("0.0001", "0.0002")):
        run = folder / str(i)
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "config.yaml").write_text(f"model:\n  optimizer:\n    lr: {lr}\n")
        rows = [f"{step},{1 / (step + 1):.4f},{1.5 / (step + 1):.4f}" for step in range(0, 100, 10)]
        (run / "metrics.csv").write_text("step,train/loss,val/loss\n" + "\n".join(rows) + "\n")


def _arguments(command: str, tmp_path: Path, cwd: Path) -> tuple[dict, list[str]]:
    """The environment settings and the arguments after `genkit`, placeholders made paths."""

    def path(match: re.Match) -> str:
        name = match.group(1)
        return str(GPT_RUN) if name in LM_PLACEHOLDERS else "placeholders/" + re.sub(r"[^\w.]+", "-", name).strip("-")

    text = PLACEHOLDER.sub(path, command)
    variables = {"PWD": str(cwd), "HOME": str(tmp_path / "home")}
    text = VARIABLE.sub(lambda m: variables.get(m.group(1), m.group(0)), text)
    words = shlex.split(text)
    env = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    assert words[0] == "genkit", command
    return env, words[1:]


def _one_job(args: list[str]) -> list[str]:
    """A sweep (`-m`) as its first job: `--cfg job` composes one job, not a sweep."""
    if "-m" not in args and "--multirun" not in args:
        return args
    parser, job = OverridesParser.create(), []
    for arg in args:
        if arg in ("-m", "--multirun"):
            continue
        if "=" in arg and not arg.startswith("-"):
            override = parser.parse_override(arg)
            if override.is_sweep_override():
                arg = f"{override.get_key_element()}={next(override.sweep_string_iterator())}"
        job.append(arg)
    return job


def test_the_docs_show_commands_of_every_verb():
    """The extraction finds the commands (a change of Markdown layout would otherwise test nothing)."""
    verbs = {re.search(r"genkit\s+(\S+)", command).group(1) for command in COMMANDS}
    assert {"train", "sample", "eval", "export", "bench", "runs", "plot"} <= verbs, verbs
    assert len(COMMANDS) > 50, sorted(COMMANDS)
    stale = sorted(set(EXCEPTIONS) - set(COMMANDS))
    assert not stale, f"EXCEPTIONS lists commands the docs no longer show: {stale}"


@pytest.mark.parametrize("command", list(COMMANDS))
def test_documented_command(command, tmp_path):
    cwd = tmp_path / "my_project"
    cwd.mkdir()
    _walkthrough_files(tmp_path)
    env, args = _arguments(command, tmp_path, cwd)
    verb, helps = (args or ["--help"])[0], "--help" in args or "-h" in args
    if verb in ("runs", "plot") and not helps:
        folders = [a for a in args[1:] if "=" not in a and not a.startswith("-")] or ["outputs"]
        for folder in folders:
            if not (cwd / folder).exists():
                _made_up_runs(cwd / folder)
    elif not helps:
        assert verb in COMPOSED, f"{command}: a verb this test does not know"
        args = _one_job(args) if "--cfg" in args else [*_one_job(args), "--cfg", "job"]
        args += [] if command in EXCEPTIONS else ["--resolve"]
    out = cli_in_process(*args, cwd=cwd, env={"HF_HUB_OFFLINE": "1", **env})
    expected = COMMANDS[command]["error"]
    if expected:
        assert out.returncode == 2 and " ".join(expected.split()) in " ".join(out.stderr.split()), out.stderr
    else:
        assert out.returncode == 0, f"{COMMANDS[command]['where']}: {command}\n{out.stderr[-3000:]}"
