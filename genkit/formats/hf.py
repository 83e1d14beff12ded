"""format=hf, for text models: a folder that transformers opens (`AutoModelForCausalLM` and
`AutoTokenizer.from_pretrained`, `pipeline("text-generation")`): config.json, model.safetensors and
the tokenizer files. A network built by transformers (model/lm_net@model.net=hf) saves itself;
genkit's own transformer becomes a GPT-2 (genkit/models/nets/hf_gpt2.py: same layout, its GELU
mapped); the LSTM has no transformers class and is refused.

A run with a label head (model.head=labels) becomes the architecture's `*ForSequenceClassification`
(`AutoModelForSequenceClassification`, `pipeline("text-classification")`): the same network, its
`score` layer the head, the labels' names in id2label. Its tokenizer writes a text as genkit reads
a prompt (the end-of-text token before it, the run's separator after it), so the pipeline gives
genkit's predictions on the plain text; transformers pools the last token that is not padding,
and padding is the end-of-text token, which never ends a prompt.
"""

import copy
from pathlib import Path

from genkit.data.chat import exported_chat_template
from genkit.formats.base import Exported, FormatUnsupported, write_folder
from genkit.formats.tokenizer_json import save_tokenizer_files
from genkit.models.nets.hf_causal_lm import HFCausalLM
from genkit.models.nets.hf_gpt2 import as_gpt2
from genkit.models.nets.transformer import Transformer


def _classifier(causal, head, labels: list[str], pad_id: int):
    """The causal LM's architecture with a sequence-classification `score` layer: its base model's
    weights, the label head as the score."""
    from transformers import AutoModelForSequenceClassification

    config = copy.deepcopy(causal.config)
    config.num_labels = len(labels)
    config.id2label, config.label2id = dict(enumerate(labels)), {label: k for k, label in enumerate(labels)}
    config.pad_token_id = pad_id
    try:
        model = AutoModelForSequenceClassification.from_config(config)
    except ValueError:
        raise FormatUnsupported(
            f"transformers has no sequence-classification class for {config.model_type}, so this run's label head "
            f"has no format=hf; export it as format=safetensors or format=ckpt."
        ) from None
    model.base_model.load_state_dict(causal.base_model.state_dict())
    model.score.weight.data.copy_(head.weight.detach())
    return model.eval()


def _transformers_model(run: Exported):
    """The run's network as a transformers causal LM (weights shared with the run's, not copied),
    or as a sequence classifier when the run has a label head."""
    net = getattr(run.model, "net", None) if run.model.modality == "text" else None
    head = getattr(run.model, "label_head", None)
    if isinstance(net, HFCausalLM):
        causal = net.model
    elif isinstance(net, Transformer):
        from transformers import GPT2Config, GPT2LMHeadModel

        config, state = as_gpt2(net)
        # GPT-2's <|endoftext|> both starts and ends text
        boundary = run.datamodule.tokenizer.eot_id
        causal = GPT2LMHeadModel(GPT2Config(**config, bos_token_id=boundary, eos_token_id=boundary)).eval()
        missing, unexpected = causal.load_state_dict(state, strict=False)
        # the output layer is tied to the embedding, so it is not among the saved weights
        if unexpected or set(missing) - {"lm_head.weight"}:
            raise RuntimeError(f"GPT-2 layout mismatch: missing {missing}, unexpected {unexpected}")
    else:
        causal = None
    if causal is not None:
        if head is None:
            return causal
        return _classifier(causal, head, run.datamodule.labels, run.datamodule.tokenizer.eot_id)
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

    classifies = getattr(run.model, "label_head", None) is not None
    # a pairs run's prompts end with its separator (its data module's encode_prompt adds it)
    separator = getattr(run.datamodule, "separator", "")
    # the chat template the run answers chats with, so apply_chat_template writes genkit's prompt
    chat = None if classifies else exported_chat_template(run.datamodule.chat_template(), separator)

    def fill(folder: Path) -> None:
        model.save_pretrained(str(folder), safe_serialization=True)
        save_tokenizer_files(
            run.datamodule.tokenizer, folder, run.config.data.block_size,
            prompt_separator=separator if classifies else None, chat_template=chat,
        )  # fmt: skip

    return write_folder(out, fill)
