"""Does a run exported with `genkit export format=hf` compute what the run computes? Measured on
real text, in fp32, by transformers itself.

python scripts/check_hf_export.py <run dir or .ckpt> [--windows 8] [--new-tokens 64] [--prompt TEXT]

It exports the run to a temporary folder (timed), opens it with AutoModelForCausalLM and
AutoTokenizer, and reports the largest logit difference over the first --windows windows of the
run's test split, and whether greedy generation from --prompt gives the same tokens in both.
The issue's bar: at most 1e-4, and the same tokens.
"""

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt")
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--prompt", default="")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import transformers

    from genkit.checkpoints.files import resolve_checkpoint
    from genkit.training.restore import load_model
    from tests.helpers import run_cli

    path = resolve_checkpoint(args.ckpt, ".", None)
    model, datamodule, cfg = load_model(path)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "hf"
        t0 = time.perf_counter()
        done = run_cli("export", f"ckpt={path}", "format=hf", f"out={out}", cwd=Path(tmp))
        seconds = time.perf_counter() - t0
        if done.returncode:
            raise SystemExit(done.stderr)
        size = sum(p.stat().st_size for p in out.iterdir())
        hf = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
        transformers.AutoTokenizer.from_pretrained(out)  # opens: the tokenizer files are complete
        datamodule.setup("test")
        worst, windows = 0.0, 0
        with torch.no_grad():
            for x, _ in datamodule.test_dataloader():
                worst = max(worst, (hf(x).logits - model(x)).abs().max().item())
                windows += len(x)
                if windows >= args.windows:
                    break
            ids = datamodule.prompt_ids(args.prompt)
            # within the learned positions: past them genkit slides its window, transformers' GPT-2 stops
            new = min(args.new_tokens, cfg.data.block_size - len(ids))
            ours = model.sample(1, prompt_ids=ids, max_new_tokens=new, temperature=0)
            x = torch.tensor([ids])
            theirs = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=new,
                                 do_sample=False, eos_token_id=None)  # fmt: skip
    print(f"{path}: {cfg.model.net._target_.rsplit('.', 1)[-1]} -> {hf.config.model_type}, "
          f"{sum(p.numel() for p in hf.parameters()):,} parameters, {size / 1e6:.1f} MB, exported in {seconds:.1f} s "
          f"(genkit export in a new process)")  # fmt: skip
    print(f"largest logit difference over {windows} test windows of {cfg.data.block_size} tokens: {worst:.2e}")
    same = "same" if ours.tolist() == theirs.tolist() else "DIFFERENT"
    print(f"greedy, {new} tokens from {args.prompt!r}: {same} in genkit and transformers")


if __name__ == "__main__":
    main()
