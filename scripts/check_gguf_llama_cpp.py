"""A format=gguf export run by llama.cpp itself (llama-cpp-python): its prompt tokens and greedy
tokens against `genkit sample`'s, and the tokens/s of one greedy completion in genkit, in
transformers (`generate` on a format=hf export of the same run, with --hf) and in llama.cpp, one
after another in one process (docs/use-elsewhere.md keeps the table, with the CPU).

    genkit export ckpt=<run> format=gguf out=<gguf folder>
    genkit export ckpt=<run> format=hf out=<hf folder>
    python scripts/check_gguf_llama_cpp.py <run or .ckpt> <gguf folder> [--hf <hf folder>] [--prompt ROMEO:] [--new 200]

llama-cpp-python is not among genkit's dependencies (PyPI has it as source only, which builds
llama.cpp with a C++ compiler and CMake): `pip install llama-cpp-python` first.
"""

import argparse
import os
import time
from pathlib import Path

import torch

from genkit.checkpoints.files import resolve_checkpoint
from genkit.training.restore import load_model


def timed(generate) -> tuple[list[int], float]:
    start = time.perf_counter()
    tokens = generate()
    return tokens, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt")
    parser.add_argument("gguf", type=Path, help="the folder genkit export format=gguf wrote")
    parser.add_argument("--hf", type=Path, help="a format=hf export of the same run: transformers' tokens/s too")
    parser.add_argument("--prompt", default="ROMEO:")
    parser.add_argument("--new", type=int, default=200, help="tokens to generate")
    args = parser.parse_args()
    from llama_cpp import Llama

    torch.set_grad_enabled(False)
    model, datamodule, _ = load_model(resolve_checkpoint(args.ckpt, "outputs"))
    ids = datamodule.prompt_ids(args.prompt)
    model.sample(1, prompt_ids=ids, max_new_tokens=4, temperature=0)  # warm up
    ours, our_s = timed(lambda: model.sample(1, prompt_ids=ids, max_new_tokens=args.new, temperature=0)[0].tolist())
    ours = ours[len(ids) :]

    llm = Llama(model_path=str(args.gguf / "model.gguf"), n_ctx=len(ids) + args.new, n_threads=os.cpu_count(),
                verbose=False)  # fmt: skip
    prompt = llm.tokenize(args.prompt.encode(), add_bos=True, special=False)
    print(f"prompt ids: genkit {ids}, llama.cpp {prompt}: {'equal' if prompt == ids else 'DIFFERENT'}")

    def llama_greedy() -> list[int]:
        llm.reset()
        out = []
        for token in llm.generate(ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
            out.append(token)
            if len(out) == args.new:
                break
        return out

    llama_greedy()  # warm up
    theirs, their_s = timed(llama_greedy)
    same = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b), len(ours))
    print(f"greedy tokens: {same} of {len(ours)} equal before the first difference")
    print(f"genkit sample: {args.new / our_s:,.0f} tokens/s; llama.cpp: {args.new / their_s:,.0f} tokens/s")
    if args.hf:
        import transformers

        hf = transformers.AutoModelForCausalLM.from_pretrained(args.hf).eval()
        x = torch.tensor([ids])

        def hf_greedy() -> list[int]:
            out = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=args.new, do_sample=False,
                              eos_token_id=None, pad_token_id=ids[0])  # fmt: skip
            return out[0, len(ids) :].tolist()

        hf_greedy()  # warm up
        hf_tokens, hf_s = timed(hf_greedy)
        print(f"transformers generate: {args.new / hf_s:,.0f} tokens/s, greedy tokens "
              f"{'equal to' if hf_tokens == ours else 'other than'} genkit's")  # fmt: skip


if __name__ == "__main__":
    main()
