"""Bad input through the real CLI: one paragraph that says what was wrong, never a traceback."""

import json

import pytest

from tests.helpers import TINY_IMAGE_RUN, cli_in_process, tiny_text_run

# (overrides, words the message must contain)
CASES = [
    (["model=nope"], ["unknown model 'nope'", "gan", "vae", "diffusion", "gpt"]),
    (["data=nope"], ["unknown data 'nope'", "mnist", "tinyshakespeare"]),
    (["model=lm", "model/lm_net@model.net=nope"], ["unknown model/lm_net", "'nope'", "gpt2, hf, lstm"]),
    (["model=lm", "data=mnist"], ["generates text", "mnist holds images"]),
    (["model._target_=mypkg.NoSuchModel"], ["cannot be imported", "PYTHONPATH"]),
    (["model=gan", "data.format=png"], ["data.format='png'", "idx"]),
    (["model=gan", "data.splits.test=nope", "test=true"], ["nope-images", "data.splits"]),
    (["model=gan", "data.max_device_batch=8"], ["cannot accumulate", "data.max_device_batch"]),
    (["model=vae", "data.batch_size=16", "data.max_device_batch=6"], ["does not split", "accumulation"]),
    (["trainer.max_epochs=abc"], ["trainer.max_epochs='abc'", "whole number"]),
    (["data.batch_size=-1"], ["data.batch_size=-1", "whole number"]),
    (["data.batch_size=100000"], ["data.batch_size=100000 is more than the 64 training examples"]),
    (["hydra.run.dir=/proc/genkit/run"], ["cannot create its run directory", "/proc/genkit/run"]),
    (["trainer=fsdp"], ["trainer=fsdp cannot run with trainer.accelerator=cpu", "CUDA GPUs only", "trainer=ddp_cpu"]),
    (
        ["model=diffusion", "model.conditional=true", "data.num_classes=0", "data.class_names=[]"],
        ["model.conditional=true needs class labels", "data.num_classes"],
    ),
    (["model=diffusion", "model.conditional=true", "model.cond_drop=1.5"], ["model.cond_drop=1.5", "[0, 1)"]),
    (["model=diffusion", "model.guidance=-1"], ["model.guidance=-1", "at least 0"]),
    (["model=gan", "data.class_names=[a,b]"], ["2 names", "data.num_classes is 10"]),
    (["model.init_from=/nonexistent/run.ckpt"], ["/nonexistent/run.ckpt does not exist"]),
    (["model=gan", "model.init_from=gpt2"], ["model.init_from", "gpt2"]),
    (["callbacks.early_stopping.patience=0"], ["callbacks.early_stopping.patience=0", "at least 1"]),
    (["logger=nope"], ["unknown logger 'nope'", "csv", "mlflow", "tensorboard", "wandb"]),
    (["logger=[tensorboard,nope]"], ["unknown logger", "nope", "Available logger options"]),
    (["trainer.accelerator=mps"], ["trainer.accelerator=mps", "needs an Apple GPU", "trainer=cpu"]),
    (["model=gan", "model.generator.num_classes=10"], ["model.generator.num_classes=10", "model.conditional=true"]),
    (
        ["model=diffusion", "model.conditional=true", "model.cond_drop=0"],
        ["model.cond_drop=0", "model.guidance=0"],
    ),
    (["finetune.freeze=[nope.*]"], ["finetune.freeze: 'nope.*' matches no parameter", "generator.net"]),
    (["finetune.freeze=generator.*"], ["finetune.freeze='generator.*' must be a list", "[generator.*]"]),
    (["finetune.train_only=[nope]"], ["finetune.train_only: 'nope' matches no parameter"]),
    (["finetune.freeze=[*]"], ["leave no parameter to train"]),
    (["finetune.lora.r=-1"], ["finetune.lora.r=-1", "at least 1"]),
    (["finetune.lora.r=2", "finetune.lora.alpha=0"], ["finetune.lora.alpha=0", "positive"]),
    (["finetune.lora.r=2", "finetune.lora.dropout=1"], ["finetune.lora.dropout=1", "[0, 1)"]),
    (["finetune.lora.r=2", "finetune.lora.targets=[nope]"], ["finetune.lora.targets: 'nope'", "Linear, Conv"]),
    (["finetune.freeze=[generator.*]"], ["leave the generator of this GAN nothing to train"]),
    (["data=image_folder"], ["data.path has no value", "pass data.path=<value>"]),
    (["callbacks.samples.first_at_step=0"], ["callbacks.samples.first_at_step=0", "at least 1"]),
    (["callbacks.samples.first_at_step=soon"], ["first_at_step='soon'", "null (no early grid)"]),
    (["model.optimizer_g.lr=nan"], ["model.optimizer_g.lr=nan", "finite value above 0"]),
    (["model.optimizer_d.lr=0"], ["model.optimizer_d.lr=0", "learning rate above 0"]),
    (["trainer.max_stepz=5"], ["`trainer.max_stepz` is not a key", "did you mean trainer.max_steps?"]),
    (["optimiser=adam"], ["`optimiser` is not a key", "did you mean model.optimizer_g?"]),
    (["++trainer.max_stepz=5"], ["trainer.max_stepz is not an argument of lightning.pytorch.Trainer", "max_steps"]),
    # every `_target_` node is bound against its class's signature before anything is built
    (["++model.generator.widht=5"], ["model.generator.widht is not an argument of", "model.generator.width?"]),
    (["++model.optimizer_g.betaz=[0.5,0.9]"], ["model.optimizer_g.betaz is not an argument of", "betas"]),
    (["++callbacks.model_checkpoint.kep=2"], ["callbacks.model_checkpoint.kep is not an argument of", "keep"]),
    (["model.generator.latent_dim=0"], ["model.generator.latent_dim=0", "at least 1"]),
]


@pytest.mark.parametrize("overrides,words", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_one_paragraph(tmp_path, tiny_data_root, overrides, words):
    out = cli_in_process(
        "train",
        *TINY_IMAGE_RUN,
        *overrides,
        cwd=tmp_path,
        env={"GENKIT_DATA_DIR": str(tiny_data_root)},
    )
    assert_one_paragraph(out, words)


def assert_one_paragraph(out, words) -> None:
    """Exit status 2, no traceback, a few lines at most, and every word of `words` in them."""
    message = " ".join(out.stderr.split())
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) <= 8, out.stderr
    for word in words:
        assert word in message, (word, message)


def test_damaged_data_file_is_named(tmp_path, tiny_data_root):
    images = tiny_data_root / "mnist" / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:100])  # truncated
    out = cli_in_process("train", *TINY_IMAGE_RUN, cwd=tmp_path, env={"GENKIT_DATA_DIR": str(tiny_data_root)})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "train-images-idx3-ubyte.gz" in out.stderr and "Delete the damaged file" in " ".join(out.stderr.split())


def test_empty_text_is_refused_and_leaves_no_cache(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    cache = tmp_path / "cache"
    out = cli_in_process(
        "train", "model=lm", "data=text", f"data.path={empty}", f"data.cache_dir={cache}", cwd=tmp_path
    )
    assert out.returncode == 2 and "is empty" in " ".join(out.stderr.split())
    assert not cache.exists() or not any(cache.rglob("*.bin"))


# (checkpoint, options, words): options of `genkit sample` and `genkit eval` checked where they enter
SAMPLE_CASES = [
    ("gan", ["n=0"], ["n=0", "at least 1"]),
    ("gan", ["n=-1"], ["n=-1"]),
    ("gan", ["n=abc"], ["n='abc'"]),
    ("gan", ["mode=bogus"], ["mode='bogus'", "prior, reconstruct, interpolate"]),
    ("gan", ["prompt=hello"], ["GAN takes no `prompt`"]),
    ("gan", ["+temprature=0.5"], ["no option 'temprature'", "temperature"]),
    ("gan", ["out=/proc/genkit/grid.png"], ["Could not write the samples", "/proc/genkit/grid.png"]),
    ("gpt", ["temperature=-1"], ["temperature=-1"]),
    ("gpt", ["top_p=0"], ["top_p=0"]),
    ("gpt", ["top_p=1.5"], ["top_p=1.5"]),
    ("gpt", ["top_k=0"], ["top_k=0"]),
    ("gpt", ["max_new_tokens=-1"], ["max_new_tokens=-1"]),
    ("gpt", ["mode=reconstruct"], ["LanguageModel takes no `mode`"]),
    ("gan", ["which=best"], ["which=best picks a checkpoint in a run directory", "is a file"]),
    ("gan", ["which=first"], ["which='first'", "best, last"]),
    ("gan", ["label=7"], ["cannot use label=7", "trained without class labels", "model.conditional=true"]),
    ("gan", ["labels=all"], ["cannot use labels='all'", "model.conditional=true"]),
    ("gan", ["guidance=2"], ["GAN takes no `guidance`"]),
    ("cdiffusion", ["label=11"], ["label=11 is not a class of mnist", "0 to 9"]),
    ("cdiffusion", ["label=sneaker"], ["label='sneaker' is not a class of mnist"]),
    ("cdiffusion", ["label=1.5"], ["label=1.5", "its number or its name"]),
    ("cdiffusion", ["labels=bogus"], ["labels='bogus'", "all or a list"]),
    ("cdiffusion", ["labels=[3,12]"], ["labels=12 is not a class"]),
    ("cdiffusion", ["label=3", "labels=[1,2]"], ["not both"]),
    ("cdiffusion", ["guidance=-1"], ["guidance=-1", "at least 0"]),
    ("gan", ["trusted_targets=[os.]"], ["trusted_targets entry 'os.'", "trusted_targets=[my_project.models.]"]),
    ("gan", ["trusted_targets=[builtins.]"], ["trusted_targets entry 'builtins.'", "standard library"]),
    ("gan", ["trusted_targets=[torch.]"], ["trusted_targets entry 'torch.' covers torch.load"]),
    ("gan", ["trusted_targets=[importlib]"], ["trusted_targets entry 'importlib'"]),
    ("gan", ["trusted_targets=['']"], ["trusted_targets entry ''"]),
    ("gan", ["n=100000"], ["n=100000 is more than `genkit sample` takes", "n=10000", "force=true"]),
    ("gan", ["force=maybe"], ["force='maybe'", "true or false"]),
    ("gpt", ["max_new_tokens=1000000000"], ["max_new_tokens=1000000000 is more than", "force=true"]),
]


@pytest.mark.parametrize("family,options,words", SAMPLE_CASES, ids=[" ".join(c[1]) for c in SAMPLE_CASES])
def test_bad_sample_option_is_one_paragraph(tmp_path, request, family, options, words):
    ckpt = request.getfixturevalue(f"tiny_{family}_checkpoint")
    data_root = ckpt.parents[3] / "data"  # the image checkpoints' tiny data sets
    out = cli_in_process("sample", f"ckpt={ckpt}", *options, f"data_root={data_root}", cwd=tmp_path)
    message = " ".join(out.stderr.split())
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) <= 10
    for word in words:
        assert word in message, (word, message)


EVAL_CASES = [
    (["n_samples=0"], ["n_samples=0"]),
    (["+nsamples=5"], ["nsamples"]),
    (["nll_samples=1000"], ["GAN takes no `nll_samples`"]),
    (["guidance=2"], ["GAN takes no `guidance`"]),
    (["guidance=abc"], ["guidance='abc'", "at least 0"]),
]


@pytest.mark.parametrize("options,words", EVAL_CASES, ids=[" ".join(c[0]) for c in EVAL_CASES])
def test_bad_eval_option_is_one_paragraph(tmp_path, tiny_gan_checkpoint, options, words):
    out = cli_in_process("eval", f"ckpt={tiny_gan_checkpoint}", *options, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert all(word in " ".join(out.stderr.split()) for word in words)


EXPORT_CASES = [
    ([], ["genkit export needs out=<file>"]),
    (["out=x.ckpt", "merge=maybe"], ["merge='maybe'", "true or false"]),
    (["out=x.ckpt", "+mrege=true"], ["has no option 'mrege'"]),
    (["out=x.ckpt", "format=nope"], ["format='nope'", "ckpt", "safetensors"]),
    (["out=x.ckpt", "overwrite=maybe"], ["overwrite='maybe'", "true or false"]),
    (["out=x.ckpt", "format=hf"], ["format=hf holds text models", "GAN", "format=safetensors"]),
    (["out=."], ["out=. already exists", "overwrite=true"]),
]


@pytest.mark.parametrize("options,words", EXPORT_CASES, ids=[" ".join(c[0]) or "no out" for c in EXPORT_CASES])
def test_bad_export_option_is_one_paragraph(tmp_path, tiny_gan_checkpoint, options, words):
    out = cli_in_process("export", f"ckpt={tiny_gan_checkpoint}", *options, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert all(word in " ".join(out.stderr.split()) for word in words), out.stderr
    assert not (tmp_path / "x.ckpt").exists()


# format=diffusers and format=onnx for a run that has no such form (an existing out=: EXPORT_CASES)
FORMAT_CASES = [
    ("tiny_gan_checkpoint", ["format=diffusers"], ["format=diffusers writes diffusion models", "GAN"]),
    (
        "tiny_gpt_checkpoint",
        ["format=onnx"],
        ["format=onnx writes the image-making network", "LanguageModel", "format=hf"],
    ),
    (
        "tiny_genkit_unet_checkpoint",
        ["format=diffusers"],
        ["diffusers' UNet2DModel", "model/denoiser@model.net=diffusers_unet", "format=onnx"],
    ),
]


@pytest.mark.parametrize("fixture,options,words", FORMAT_CASES, ids=[" ".join(c[1]) + " " + c[0] for c in FORMAT_CASES])
def test_bad_export_format_is_one_paragraph(tmp_path, request, fixture, options, words):
    ckpt = request.getfixturevalue(fixture)
    out = cli_in_process("export", f"ckpt={ckpt}", *options, f"out={tmp_path / 'exported'}", cwd=tmp_path)
    assert_one_paragraph(out, words)
    assert not (tmp_path / "exported").exists()


# every option of `genkit serve`, refused before a model loads or a port opens to the world
SERVE_CASES = [
    (["host=0.0.0.0"], ["host=0.0.0.0 lets other machines reach the model", "api_key=<key>", "GENKIT_API_KEY"]),
    (["api_key=[1,2]"], ["api_key=[1, 2]", "must be text"]),
    (["port=70000"], ["port=70000", "from 0 to 65535"]),
    (["port=@busy"], ["cannot listen on 127.0.0.1", "port=0 picks a free one"]),
    (["max_n=0"], ["max_n=0", "at least 1"]),
    (["max_tokens=-5"], ["max_tokens=-5", "at least 1"]),
    (["max_steps=0"], ["max_steps=0", "at least 1"]),
    (["max_body_bytes=0"], ["max_body_bytes=0", "at least 1"]),
    (["timeout=0"], ["timeout=0", "above 0"]),
    (["max_batch=0"], ["max_batch=0", "at least 1"]),
    (["batch_window_ms=-1"], ["batch_window_ms=-1", "at least 0"]),
    (["threads=-1"], ["threads=-1", "at least 0"]),
    (["+max_batchsize=4"], ["has no option 'max_batchsize'", "max_batch"]),
]


@pytest.mark.parametrize("options,words", SERVE_CASES, ids=[" ".join(c[0]) for c in SERVE_CASES])
def test_bad_serve_option_is_one_paragraph(tmp_path, tiny_gpt_checkpoint, options, words):
    import socket

    with socket.socket() as busy:  # a port something else listens on
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        options = [o.replace("@busy", str(busy.getsockname()[1])) for o in options]
        out = cli_in_process("serve", f"ckpt={tiny_gpt_checkpoint}", *options, cwd=tmp_path, env={"GENKIT_API_KEY": ""})
    assert_one_paragraph(out, words)


TEXT_CASES = [
    (["data.unknown_chars=xy"], ["data.unknown_chars='xy'", "error, drop, or one character"]),
    (["data.lowercase=maybe"], ["data.lowercase='maybe'", "true or false"]),
    (["model.init_from=@run", "model.net.n_layer=3"], ["does not fit this model", "net.blocks"]),
    (
        ["model.init_from=@image_run"],
        ["is a run of genkit.models.gan.GAN", "a language model starts from a language model's run"],
    ),
    (["finetune.lora.r=2", "finetune.lora.targets=[net.wte]"], ["net.wte shares its weight with net.lm_head"]),
    (["data.block_size=0"], ["data.block_size=0", "whole number of at least 1"]),
    (["model.net.n_embd=0"], ["model.net.n_embd=0", "whole number of at least 1"]),
]


@pytest.mark.parametrize("options,words", TEXT_CASES, ids=[" ".join(c[0]) for c in TEXT_CASES])
def test_bad_text_finetune_option_is_one_paragraph(tmp_path, tiny_gpt_checkpoint, tiny_gan_checkpoint, options, words):
    from tests.helpers import tiny_text_run

    run = tiny_text_run(tmp_path)
    (tmp_path / "corpus.txt").write_text("Text with CAPITALS and % signs that the tiny run never saw\n" * 50)
    where = {"@run": str(tiny_gpt_checkpoint), "@image_run": str(tiny_gan_checkpoint)}
    options = [o.replace("@image_run", where["@image_run"]).replace("@run", where["@run"]) for o in options]
    out = cli_in_process("train", *run, *options, cwd=tmp_path)
    message = " ".join(out.stderr.split())
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-3000:]
    for word in words:
        assert word in message, (word, message)


def test_word_corpus_whose_vocabulary_explodes_is_called_corrupt(tmp_path):
    ptb = tmp_path / "data" / "ptb"
    ptb.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        (ptb / f"ptb.{split}.txt").write_text("the cat sat on the mat\n" * 50)
    with open(ptb / "ptb.train.txt", "a") as f:  # junk appended: 20,000 new "words"
        f.write(" ".join(f"x{i:05d}" for i in range(20000)) + "\n")
    out = cli_in_process(
        "train", "model=lm", "data=ptb", f"data.root={tmp_path / 'data'}", f"data.cache_dir={tmp_path / 'c'}",
        cwd=tmp_path,
    )  # fmt: skip
    message = " ".join(out.stderr.split())
    assert out.returncode == 2 and "probably not the data set" in message and "Traceback" not in out.stderr


# (arguments of genkit runs / genkit plot, words): commands that read run directories
RUN_READER_CASES = [
    (["runs", "@nope"], ["is not a folder of runs", "genkit train", "usage: genkit runs"]),
    (["runs", "@runs", "@runs"], ["takes one folder and --json"]),
    (["runs", "--jsn"], ["takes one folder and --json", "--jsn"]),
    (["plot"], ["needs at least one run directory"]),
    (["plot", "@nope"], ["does not exist"]),
    (["plot", "@empty"], ["No run directories (with a metrics.csv)"]),
    (["plot", "@runs", "metrc=val/loss"], ["no option 'metrc'", "metric= and out="]),
    (["plot", "@runs", "metric=val/nope"], ["metric=val/nope was not logged", "train/loss"]),
    (["plot", "@runs", "metric=train/loss", "out=/proc/genkit/plot.png"], ["Could not write", "/proc/genkit/plot.png"]),
    (["plot", "@mixed"], ["rank by different metrics (val/fid_clf, val/loss)", "metric=<name>"]),
]


@pytest.mark.parametrize("args,words", RUN_READER_CASES, ids=[" ".join(c[0]) for c in RUN_READER_CASES])
def test_bad_runs_and_plot_arguments_are_one_paragraph(tmp_path, args, words):
    runs, empty = tmp_path / "outputs", tmp_path / "empty"
    (runs / "a").mkdir(parents=True)
    (runs / "a" / "metrics.csv").write_text("step,train/loss\n1,2.0\n2,1.5\n")
    empty.mkdir()
    mixed = tmp_path / "mixed"  # a language model's run and a GAN's, each ranked by its own metric
    for name, monitor in (("lm", "val/loss"), ("gan", "val/fid_clf")):
        (mixed / name).mkdir(parents=True)
        (mixed / name / "metrics.csv").write_text(f"step,{monitor}\n1,2.0\n")
        (mixed / name / "status.json").write_text(json.dumps({"status": "finished", "monitor": monitor}))
    where = {"@runs": str(runs), "@empty": str(empty), "@nope": str(tmp_path / "nope"), "@mixed": str(mixed)}
    out = cli_in_process(*[where.get(a, a) for a in args], cwd=tmp_path)
    message = " ".join(out.stderr.split())
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert len(out.stderr.strip().splitlines()) <= 8, out.stderr
    for word in words:
        assert word in message, (word, message)


TEXT_CASES = [
    (["data.streams=maybe"], ["data.streams='maybe'", "true or false"]),
    (["data.streams=true", "data.max_device_batch=4"], ["data.streams=true carries", "data.max_device_batch=null"]),
    (["model.net.gelu=relu"], ["model.net.gelu='relu'", "tanh", "none"]),
    (["data.num_proc=0"], ["data.num_proc=0", "at least 1", "worker processes"]),
    (["data.fit_chars=lots"], ["data.fit_chars='lots'", "whole number", "BPE tokenizer is fitted on"]),
    (["model.head=labels"], ["model.head=labels", "need a label task", "model.head=tokens"]),
    (["model.label_loss=balanced"], ["model.label_loss=balanced", "need a label task"]),
]


@pytest.mark.parametrize("overrides,words", TEXT_CASES, ids=[" ".join(c[0]) for c in TEXT_CASES])
def test_bad_text_input_is_one_paragraph(tmp_path, overrides, words):
    out = cli_in_process("train", *tiny_text_run(tmp_path), "trainer.max_steps=2", *overrides, cwd=tmp_path)
    assert_one_paragraph(out, words)


# model/lm_net@model.net=hf and Hugging Face checkpoints (model.init_from): @llama is a tiny random
# Llama folder; @remote, @bin_only and @nothing are copies of its config that are refused
HF_CASES = [
    (["model.init_from=nobody-here/no-such-model"], ["Could not fetch 'nobody-here/no-such-model'", "local folder"]),
    (["model.init_from=@remote"], ["needs code of its own", "trust_remote_code", "genkit never sets it"]),
    (["model.init_from=@bin_only"], ["no safetensors weights", "only pytorch_model.bin", "safetensors only"]),
    (["model.init_from=@nothing"], ["has no config.json"]),
    (["model.init_from=null"], ["needs its architecture", "model.net.architecture="]),
    (["model.net.architecture={hidden_size:8}"], ["model.net.architecture needs a model_type"]),
    (["model.net.architecture={model_type:nope}"], ["cannot build a model_type='nope' network"]),
    (["model.net.gradient_checkpointing=maybe"], ["model.net.gradient_checkpointing='maybe'", "true or false"]),
    (["data.block_size=512"], ["data.block_size=512 is longer than the 128 positions", "max_position_embeddings"]),
    (["model/lm_net@model.net=gpt2"], ["holds a 'llama' model", "model/lm_net@model.net=hf"]),
    (["model/lm_net@model.net=lstm"], ["holds a 'llama' model", "model/lm_net@model.net=hf"]),
]


@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory):
    from tests.helpers import write_tiny_hf_model

    root = tmp_path_factory.mktemp("hf_bad")
    llama = write_tiny_hf_model(root / "llama")
    config = json.loads((llama / "config.json").read_text())
    for name, extra, weights in (("remote", {"auto_map": {"AutoModelForCausalLM": "mine.Model"}}, None),
                                 ("bin_only", {}, "pytorch_model.bin"), ("nothing", None, None)):  # fmt: skip
        (root / name).mkdir()
        if extra is not None:
            (root / name / "config.json").write_text(json.dumps({**config, **extra}))
        if weights:
            (root / name / weights).write_bytes(b"a pickle genkit never opens")
    return root


@pytest.mark.parametrize("overrides,words", HF_CASES, ids=[" ".join(c[0]) for c in HF_CASES])
def test_bad_hugging_face_input_is_one_paragraph(tmp_path, hf_folders, monkeypatch, overrides, words):
    import huggingface_hub.constants

    from tests.helpers import hf_text_run

    # offline at once (the hub client would retry for ~15 s on a machine without a network)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    overrides = [o.replace("@", f"{hf_folders}/") if "init_from=@" in o else o for o in overrides]
    run = hf_text_run(tmp_path, hf_folders / "llama")
    if any(o.startswith("model/lm_net") for o in overrides):  # another network in place of hf
        run = [o for o in run if not o.startswith("model/lm_net")]
    out = cli_in_process("train", *run, *overrides, cwd=tmp_path)
    assert_one_paragraph(out, words)


# (overrides, words): a prompt -> completion task (data=pairs) with bad records or options; @dir is
# a folder of tiny records that the test writes, @empty / @notjson the same with one bad record
PAIRS_CASES = [
    (["data.path=@dir", "data.prompt_key=question"], ["train.jsonl line 1 has no 'question' field", "data.prompt_key"]),
    (["data.path=@empty"], ["train.jsonl line 3 has an empty completion"]),
    (["data.path=@notjson"], ["train.jsonl line 2 is not JSON", "CSV", "Parquet"]),
    (["data.path=@dir", "data.labels=[red,green]"], ["the label 'blue', which the label set lacks", "data.labels"]),
    (["data.path=@dir", "data.block_size=4"], ["train.jsonl line 1: its prompt is", "no room for a completion"]),
    (["data.path=@dir", "data.files={train: @dir/train.jsonl}"], ["exactly one source of records", "path, files"]),
    (["data.path=@dir", "model.rank_by=accuracy"], ["model.rank_by='accuracy'", "val/macro_f1"]),
    (["data.path=@dir", "callbacks.task_scores.max_records=0"], ["max_records=0", "at least 1"]),
    (["data.path=@dir", "data.long_prompts=maybe"], ["data.long_prompts='maybe'", "error", "cut"]),
    (["data.path=@dir", "data.group_by_length=sometimes"], ["data.group_by_length='sometimes'", "true", "false"]),
    (["data.path=@dir", "model.head=softmax"], ["model.head='softmax'", "tokens", "labels"]),
    (["data.path=@dir", "model.label_loss=focal"], ["model.label_loss='focal'", "plain", "balanced"]),
    (["data.path=@dir", "model.label_loss=logit_adjusted"], ["model.label_loss='logit_adjusted'", "model.head=labels"]),
    (["data.path=@dir", "model.label_rows=maybe"], ["model.label_rows='maybe'", "true or false"]),
    (["data.path=@dir", "callbacks.task_scores.label_scoring=best"], ["label_scoring='best'", "auto", "calibrated"]),
    (["data.path=@dir", "callbacks.task_scores.label_prior_strength=-1"], ["label_prior_strength=-1", "at least 0"]),
]


@pytest.mark.parametrize("overrides,words", PAIRS_CASES, ids=[" ".join(c[0]) for c in PAIRS_CASES])
def test_bad_pairs_input_is_one_paragraph(tmp_path, overrides, words):
    from tests.pairs_helpers import tiny_pairs_run, write_tiny_pairs

    run = [o for o in tiny_pairs_run(tmp_path) if not o.startswith("data.path=")]
    good = write_tiny_pairs(tmp_path / "dir")
    empty, notjson = write_tiny_pairs(tmp_path / "empty"), write_tiny_pairs(tmp_path / "notjson")
    lines = (good / "train.jsonl").read_text().splitlines()
    (empty / "train.jsonl").write_text("\n".join([*lines[:2], '{"prompt": "x", "completion": " "}', *lines[2:]]))
    (notjson / "train.jsonl").write_text("\n".join([lines[0], "prompt,completion", *lines[1:]]))
    where = {"@dir": str(good), "@empty": str(empty), "@notjson": str(notjson)}
    overrides = [o.replace("@dir", where["@dir"]).replace("@empty", where["@empty"]) for o in overrides]
    overrides = [o.replace("@notjson", where["@notjson"]) for o in overrides]
    out = cli_in_process("train", *run, *overrides, cwd=tmp_path)
    assert_one_paragraph(out, words)


# (options, words): `genkit sample` / `genkit eval` of a pairs checkpoint
PAIRS_SAMPLE_CASES = [
    (["sample"], ["is a prompt -> completion task", 'prompt="..."', "inputs=<file.jsonl>"]),
    (["sample", "inputs=@prompts"], ["needs out=<preds.jsonl>"]),
    (["sample", "inputs=@notjson", "out=p.jsonl"], ["line 1 is not JSON"]),
    (["sample", "inputs=@long", "out=p.jsonl"], ["line 1: its prompt does not fit", "24 tokens"]),
    (["eval", "choose_labels=maybe"], ["choose_labels='maybe'", "likelihood, generate"]),
    (["eval", "task_records=0"], ["task_records=0", "at least 1"]),
    (["eval", "label_scoring=best"], ["label_scoring='best'", "auto", "sum", "prior"]),
    (["eval", "label_prior_strength=-0.5"], ["label_prior_strength=-0.5", "at least 0"]),
    (["eval", "baseline=tfidf"], ["baseline=tfidf scores a baseline fitted on the data", "drop ckpt="]),
    (["eval", "baseline=bert"], ["baseline='bert'", "tfidf"]),
]


@pytest.fixture(scope="module")
def tiny_pairs_checkpoint(tmp_path_factory):
    from tests.pairs_helpers import tiny_pairs_run

    tmp = tmp_path_factory.mktemp("pairs")
    out = cli_in_process("train", *tiny_pairs_run(tmp), f"hydra.run.dir={tmp / 'run'}", cwd=tmp)
    assert out.returncode == 0, out.stderr[-3000:]
    return tmp / "run"


@pytest.mark.parametrize("args,words", PAIRS_SAMPLE_CASES, ids=[" ".join(c[0]) for c in PAIRS_SAMPLE_CASES])
def test_bad_pairs_sample_is_one_paragraph(tmp_path, tiny_pairs_checkpoint, args, words):
    files = {"@prompts": '{"prompt": "item 1 starts re"}\n', "@notjson": "item 1 starts re\n",
             "@long": '{"prompt": "' + "x" * 40 + '"}\n'}  # fmt: skip
    for name, text in files.items():
        (tmp_path / f"{name[1:]}.jsonl").write_text(text)
    args = [a.replace(n, str(tmp_path / f"{n[1:]}.jsonl")) if n in a else a for a in args for n in [next(
        (k for k in files if k in a), "@none")]]  # fmt: skip
    out = cli_in_process(args[0], f"ckpt={tiny_pairs_checkpoint}", *args[1:], cwd=tmp_path)
    assert_one_paragraph(out, words)


def _binary(path):
    path.write_bytes(bytes(range(256)) * 64)  # what /bin/ls looks like to a reader of text


def _latin1(path):
    path.write_bytes(("Café au lait, crème brûlée.\n" * 80).encode("latin-1"))


def _one_line(path):
    path.write_text("hello world\n")


# (what data.path holds, overrides, words): damaged or mistaken data files, each one paragraph
DATA_FILE_CASES = [
    (_binary, [], ["is not a text file", "binary data"]),
    (_latin1, [], ["is not UTF-8 text", "byte 0xe9", "data.encoding=<its encoding>"]),
    (_latin1, ["data.encoding=ascii"], ["is not ascii text either", "byte 0xe9"]),
    (_latin1, ["data.encoding=klingon"], ["data.encoding='klingon' is not an encoding"]),
    (_one_line, [], ["The val split of text is empty", "data.fractions gives it 5%", "at least about"]),
]


@pytest.mark.parametrize(
    "write,overrides,words", DATA_FILE_CASES, ids=[f"{c[0].__name__} {c[1]}" for c in DATA_FILE_CASES]
)
def test_bad_data_file_is_one_paragraph(tmp_path, write, overrides, words):
    path = tmp_path / "corpus.txt"
    write(path)
    out = cli_in_process("train", "model=lm", "data=text", f"data.path={path}", "data.vocab_size=300",
                         "data.block_size=8", f"data.cache_dir={tmp_path / 'cache'}", "trainer.accelerator=cpu",
                         *overrides, cwd=tmp_path)  # fmt: skip
    assert_one_paragraph(out, words)
    assert not (tmp_path / "outputs").exists()
