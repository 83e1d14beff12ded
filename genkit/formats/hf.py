"""format=hf, for text models: a folder that transformers opens (`AutoModelForCausalLM` and
`AutoTokenizer.from_pretrained`, `pipeline("text-generation")`): config.json, model.safetensors and
the tokenizer files. A network built by transformers (model/lm_net@model.net=hf) saves itself;
genkit's own transformer becomes a GPT-2 (genkit/models/nets/hf_gpt2.py: same layout, its GELU
mapped); the LSTM has no transformers class and is refused.
"""

from pathlib import Path

from genkit.formats.base import Exported, FormatUnsupported, write_folder
from genkit.formats.tokenizer_json import save_tokenizer_files
from genkit.models.nets.hf_causal_lm import HFCausalLM
from genkit.models.nets.hf_gpt2 import as_gpt2
from genkit.models.nets.transformer import Transformer


def _transformers_model(run: Exported):
    """The run's network as a transformers causal LM (weights shared with the run's, not copied)."""
    net = getattr(run.model, "net", None) if run.model.modality == "text" else None
    if isinstance(net, HFCausalLM):
        return net.model
    if isinstance(net, Transformer):
        from transformers import GPT2Config, GPT2LMHeadModel

        config, state = as_gpt2(net)
        boundary = run.datamodule.tokenizer.bos_id  # GPT-2's <|endoftext|> both starts and ends text
        model = GPT2LMHeadModel(GPT2Config(**config, bos_token_id=boundary, eos_token_id=boundary)).eval()
        missing, unexpected = model.load_state_dict(state, strict=False)
        # the output layer is tied to the embedding, so it is not among the saved weights
        if unexpected or set(missing) - {"lm_head.weight"}:
            raise RuntimeError(f"GPT-2 layout mismatch: missing {missing}, unexpected {unexpected}")
        return model
    if net is not None:
        raise FormatUnsupported(
            f"The run's {type(net).__name__} network has no transformers class, so there is no format=hf for it; "
            f"export it as format=safetensors (weights, config and tokenizer that genkit sample and genkit eval "
            f"open) or format=ckpt."
        )
    raise FormatUnsupported(
        f"format=hf holds text models (transformers' causal LMs), and this run is a {type(run.model).__name__} "
        f"of {run.model.modality}; export it as format=safetensors or format=ckpt (or a format of its family)."
    )


def write_hf(run: Exported, out: Path) -> Path:
    model = _transformers_model(run)

    def fill(folder: Path) -> None:
        model.save_pretrained(str(folder), safe_serialization=True)
        save_tokenizer_files(run.datamodule.tokenizer, folder, run.config.data.block_size)

    return write_folder(out, fill)
