"""genkit's tokenizers as a Hugging Face `tokenizers` tokenizer.json (with tokenizer_config.json),
which `AutoTokenizer.from_pretrained` opens: byte-level BPE is one already; the character and word
vocabularies become WordLevel models with the same ids, so text encodes to the ids genkit gives it.
"""

from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import WordLevel

from genkit.data.tokenizers import BOUNDARY_TOKENS, EOS, UNK, BPETokenizer, CharTokenizer, WordTokenizer
from genkit.errors import GenkitError


def hf_tokenizer(tokenizer) -> tuple[Tokenizer, str | None]:
    """The `tokenizers` form of a genkit tokenizer, and its boundary token (None: no special one)."""
    if isinstance(tokenizer, BPETokenizer):
        token = tokenizer.tokenizer.id_to_token(tokenizer.eot_id)
        return tokenizer.tokenizer, token if token in BOUNDARY_TOKENS else None
    if isinstance(tokenizer, CharTokenizer):
        hf = Tokenizer(WordLevel(dict(tokenizer.stoi), unk_token=None))
        # every character its own token, newlines included ([\s\S]: "." stops at a newline)
        hf.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        hf.decoder = decoders.Fuse()  # characters join with nothing between them
        return hf, None
    if isinstance(tokenizer, WordTokenizer):
        hf = Tokenizer(WordLevel(dict(tokenizer.stoi), unk_token=UNK if UNK in tokenizer.stoi else None))
        # genkit ends every line with <eos> (Mikolov's PTB convention)
        hf.normalizer = normalizers.Replace("\n", f" {EOS} ")
        hf.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        # words join with spaces; <eos> reads back as a line break (with a space either side)
        hf.decoder = decoders.Sequence([decoders.Replace(EOS, "\n"), decoders.WordPiece(prefix="\0", cleanup=False)])
        return hf, EOS
    raise GenkitError(f"The run's {type(tokenizer).__name__} has no tokenizer.json form; export it as format=ckpt.")


def _as_prompt(hf: Tokenizer, tokenizer, separator: str) -> None:
    """A post-processor that writes a text as genkit reads a prompt: the boundary token, the text,
    and for a label head's export the separator's tokens (special tokens of the template, so the
    ids are exactly genkit's). It replaces the tokenizer's own (a Llama tokenizer's `<s> $A`, which
    is this with <s> as the boundary; byte-level BPE's, which only trims offsets)."""
    from tokenizers.processors import TemplateProcessing

    ids = [tokenizer.eot_id, *(tokenizer.encode_prompt(separator) if separator else [])]
    names = [f"<genkit_{i}>" for i in ids]  # template pieces are names; the ids are what counts
    hf.post_processor = TemplateProcessing(
        single=[names[0], "$A", *names[1:]], special_tokens=list(dict(zip(names, ids, strict=True)).items())
    )


def save_tokenizer_files(
    tokenizer, folder: Path, max_length: int, prompt_separator: str | None = None, chat_template: str | None = None
) -> None:
    """tokenizer.json and tokenizer_config.json in folder (transformers writes the second).

    Texts are written as genkit reads a prompt, its boundary token first (`genkit sample` starts
    every prompt with it), so `AutoTokenizer` + `generate` or `pipeline("text-generation")` on the
    folder as it is give genkit's text. prompt_separator (a label head's export): the separator
    after the text too, and the boundary token pads. chat_template: written into
    tokenizer_config.json, where `apply_chat_template` finds it."""
    from transformers import PreTrainedTokenizerFast

    hf, boundary = hf_tokenizer(tokenizer)
    special = {"bos_token": boundary, "eos_token": boundary} if boundary else {}
    hf = Tokenizer.from_str(hf.to_str())  # a copy: the run's own tokenizer is left as it is
    _as_prompt(hf, tokenizer, prompt_separator or "")
    if prompt_separator is not None:
        special["pad_token"] = hf.id_to_token(tokenizer.eot_id)
    if chat_template:
        special["chat_template"] = chat_template
    fast = PreTrainedTokenizerFast(tokenizer_object=hf, model_max_length=max_length, **special)
    fast.save_pretrained(str(folder), save_jinja_files=False)
