"""Tokenizers for token streams: words (PTB), characters, and byte-level BPE (HF tokenizers).

Each maps text to ids and back, names a boundary token that starts every stream (and
generation without a prompt), and serialises to one JSON file kept beside the cached ids.
"""

import json
import re
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

from genkit.errors import GenkitError

EOS = "<eos>"
UNK = "<unk>"
ENDOFTEXT = "<|endoftext|>"
BOUNDARY_TOKENS = (ENDOFTEXT, "<s>", "<|begin_of_text|>")
# shown for ids beyond the vocabulary: a model's vocab_size may be padded past the tokenizer's
UNKNOWN_ID = "\ufffd"
# texts at least this long are encoded as a batch of lines
LONG_TEXT = 1 << 16
# after a line break that follows a visible character and precedes one (or a space and one): GPT-2's
# pre-tokenizer ends a pre-token there, so encoding the two sides apart changes no token
_CLEAN_LINE_BREAK = re.compile(r"(?<=\S\n)(?=\S| \S)")


class WordTokenizer:
    """Whitespace-separated words, each line ended by <eos> (Mikolov's PTB convention)."""

    kind = "word"

    def __init__(self, itos: list[str]):
        self.itos = itos
        self.stoi = {w: i for i, w in enumerate(itos)}
        self.eot_id = self.stoi[EOS]

    @classmethod
    def fit(cls, text: str, vocab_size: int | None = None) -> "WordTokenizer":
        return cls.fit_pieces([text], vocab_size)

    @classmethod
    def fit_pieces(cls, pieces: Iterable[str], vocab_size: int | None = None) -> "WordTokenizer":
        """From a text read in pieces (streaming counts: memory for the vocabulary, not the text)."""
        # ids in order of first appearance, as in PyTorch's word_language_model
        itos: dict[str, None] = {}
        for text in pieces:
            for line in text.splitlines():
                for word in line.split():
                    itos.setdefault(word, None)
                itos.setdefault(EOS, None)
        return cls(list(itos))

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        ids = []
        for line in text.splitlines():
            ids.extend(self._id(w) for w in line.split())
            ids.append(self.eot_id)
        return ids

    def encode_prompt(self, text: str) -> list[int]:
        return [self._id(w) for w in text.split()]

    def _id(self, word: str) -> int:
        if word in self.stoi:
            return self.stoi[word]
        if UNK in self.stoi:
            return self.stoi[UNK]
        raise GenkitError(f"The word {word!r} is not in the vocabulary, which has no {UNK} token.")

    def decode(self, ids: Iterable[int]) -> str:
        words = (self.itos[i] if i < len(self.itos) else UNKNOWN_ID for i in ids)
        return " ".join(words).replace(f" {EOS} ", "\n").replace(EOS, "\n")

    def to_json(self) -> dict:
        return {"kind": self.kind, "itos": self.itos}

    @property
    def boundary(self) -> str:
        """The boundary token as text (a chat template's bos_token)."""
        return self.itos[self.eot_id]


class CharTokenizer:
    """One id per character; the vocabulary is the sorted set of the training text's characters."""

    kind = "char"

    def __init__(self, itos: list[str]):
        self.itos = itos
        self.stoi = {c: i for i, c in enumerate(itos)}
        self.eot_id = self.stoi.get("\n", 0)

    @classmethod
    def fit(cls, text: str, vocab_size: int | None = None) -> "CharTokenizer":
        return cls.fit_pieces([text], vocab_size)

    @classmethod
    def fit_pieces(cls, pieces: Iterable[str], vocab_size: int | None = None) -> "CharTokenizer":
        chars: set[str] = set()
        for text in pieces:
            chars.update(text)
        return cls(sorted(chars))

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        unknown = set(text) - self.stoi.keys()
        if unknown:
            raise GenkitError(
                f"The characters {''.join(sorted(unknown))!r} are not in the vocabulary built from "
                f"the training text; remove them from the text or the prompt."
            )
        return [self.stoi[c] for c in text]

    encode_prompt = encode

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.itos[i] if i < len(self.itos) else UNKNOWN_ID for i in ids)

    def to_json(self) -> dict:
        return {"kind": self.kind, "itos": self.itos}

    @property
    def boundary(self) -> str:
        """The boundary token as text (a chat template's bos_token)."""
        return self.itos[self.eot_id]


class BPETokenizer:
    """Byte-level BPE (as in GPT-2) from HF tokenizers: trained here, or a checkpoint's own."""

    kind = "bpe"

    def __init__(self, tokenizer: Tokenizer, chat_template: str | None = None, end_of_turn: str | None = None):
        """chat_template / end_of_turn: a Hugging Face tokenizer's chat template (Jinja) and the
        token that ends a turn in it (its eos_token), kept so the run answers chats as its model
        was taught to (genkit.data.chat)."""
        self.tokenizer = tokenizer
        # the token that starts a text: GPT-2's, Qwen's and SmolLM's <|endoftext|>, Llama 2's <s>,
        # Llama 3's <|begin_of_text|>; id 0 for a tokenizer that names none of them
        ids = (tokenizer.token_to_id(token) for token in BOUNDARY_TOKENS)
        self.eot_id = next((i for i in ids if i is not None), 0)
        self.chat_template, self.end_of_turn = chat_template, end_of_turn

    @classmethod
    def fit(cls, text: str, vocab_size: int) -> "BPETokenizer":
        return cls.fit_pieces([text], vocab_size)

    @classmethod
    def fit_pieces(cls, pieces: Iterable[str], vocab_size: int) -> "BPETokenizer":
        """Trained on the pieces' lines as they come: HF's trainer keeps word counts, not the text
        (genkit.data.token_files hands it a bounded sample of a large corpus, data.fit_chars)."""
        from tokenizers import decoders, pre_tokenizers

        tokenizer = Tokenizer(BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[ENDOFTEXT],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        # train on lines so that no single "word" spans the whole corpus
        lines = (line for text in pieces for line in text.splitlines(keepends=True))
        tokenizer.train_from_iterator(lines, trainer=trainer)
        return cls(tokenizer)

    @classmethod
    def from_pretrained(cls, folder: Path) -> "BPETokenizer":
        if (folder / "tokenizer.json").is_file():
            return cls(Tokenizer.from_file(str(folder / "tokenizer.json")), *_chat_settings(folder))
        if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
            from tokenizers import decoders, pre_tokenizers

            tokenizer = Tokenizer(BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt")))
            tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            tokenizer.decoder = decoders.ByteLevel()
            return cls(tokenizer)
        raise GenkitError(f"{folder} has no tokenizer.json, nor vocab.json + merges.txt.")

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        # without the tokenizer's own specials (a Llama tokenizer.json adds <s> to every text):
        # genkit puts its boundary token where a text starts
        if len(text) < LONG_TEXT:
            return self.tokenizer.encode(text, add_special_tokens=False).ids
        # a long text as a batch of its lines: ~1.2x faster on one core than one string, and the
        # same ids, since it is cut only where byte-level BPE's pre-tokenizer cuts anyway
        lines = _CLEAN_LINE_BREAK.split(text)
        return [i for encoding in self.tokenizer.encode_batch(lines, add_special_tokens=False) for i in encoding.ids]

    encode_prompt = encode

    def decode(self, ids: Iterable[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    @property
    def boundary(self) -> str:
        """The boundary token as text (a chat template's bos_token)."""
        return self.tokenizer.id_to_token(self.eot_id) or ""

    def to_json(self) -> dict:
        spec = {"kind": self.kind, "tokenizer": self.tokenizer.to_str()}
        if self.chat_template:
            spec.update(chat_template=self.chat_template, end_of_turn=self.end_of_turn)
        return spec


def _chat_settings(folder: Path) -> tuple[str | None, str | None]:
    """A Hugging Face tokenizer folder's chat template (tokenizer_config.json's `chat_template`, its
    default when it holds several, or chat_template.jinja) and the token that ends a turn."""
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    template = config.get("chat_template")
    if isinstance(template, list):  # [{"name": "default", "template": ...}, {"name": "tool_use", ...}]
        template = next(
            (t.get("template") for t in template if isinstance(t, dict) and t.get("name") == "default"), None
        )
    if not isinstance(template, str) and (folder / "chat_template.jinja").is_file():
        template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    eos = config.get("eos_token")
    eos = eos.get("content") if isinstance(eos, dict) else eos
    return (template, eos if isinstance(eos, str) else None) if isinstance(template, str) else (None, None)


KINDS = {"word": WordTokenizer, "char": CharTokenizer, "bpe": BPETokenizer}


def save_tokenizer(tokenizer, path: Path) -> None:
    path.write_text(json.dumps(tokenizer.to_json()))


def load_tokenizer(path: Path):
    return tokenizer_from_json(json.loads(Path(path).read_text()))


def tokenizer_from_json(spec: dict):
    """The tokenizer that `to_json()` described (a checkpoint carries its run's this way)."""
    if spec.get("kind") not in KINDS:
        raise ValueError(f"unknown tokenizer kind {spec.get('kind')!r}")
    if spec["kind"] == "bpe":
        return BPETokenizer(Tokenizer.from_str(spec["tokenizer"]), spec.get("chat_template"), spec.get("end_of_turn"))
    return KINDS[spec["kind"]](spec["itos"])
