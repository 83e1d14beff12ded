"""Any Hugging Face causal LM (Llama, Qwen2, Mistral, GPT-NeoX, GPT-2, Phi-3, SmolLM, ...) as the
language-model family's network: `model/lm_net@model.net=hf`.

transformers builds the network (AutoModelForCausalLM, never with trust_remote_code) from a
config.json: model.init_from's (a hub id or a folder; its safetensors weights then load too) or
model.net.architecture's (a hub id, a folder or a dict of config keys; trained from scratch).
The resolved config is stored in the run's config, so a checkpoint rebuilds the network without
the hub. genkit asks of it what it asks of its own transformer (LanguageModelNet in
genkit/models/lm.py): hidden states for the loss, logits with a cache (transformers'
DynamicCache, in genkit's row layout: genkit.models.nets.hf_row_cache) for genkit's one
generation loop (genkit.models.decoding).
"""

import logging
from collections.abc import Mapping
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM

from genkit.checkpoints.hub import pretrained_dir, safetensors_files
from genkit.errors import GenkitError, first_line
from genkit.models.nets.hf_row_cache import HFRowCache

log = logging.getLogger(__name__)

# config keys of architectures whose logits are not lm_head(hidden) (Gemma 2's soft cap, Cohere's
# and Granite's scales): genkit's loss multiplies hidden states by lm_head.weight itself, so it
# would score those models wrongly
LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def _plain(config: Mapping | DictConfig) -> dict:
    return OmegaConf.to_container(config, resolve=True) if isinstance(config, DictConfig) else dict(config)


class HFCausalLM(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        block_size: int,
        config: Mapping,
        architecture: Any = None,
        gradient_checkpointing: bool = False,
    ):
        """config: the architecture's config.json keys (the resolver `hf_architecture` fills it
        from model.init_from or `architecture`, which is kept only as the record of what was asked);
        vocab_size: the data's vocabulary (the checkpoint's own when it names one)."""
        super().__init__()
        settings = _plain(config)
        model_type = settings.pop("model_type", None)
        if settings.get("auto_map"):
            raise GenkitError(
                "model.net.config names code of its own (auto_map), which genkit never runs (trust_remote_code "
                "stays off); pick an architecture that transformers provides."
            )
        if not isinstance(gradient_checkpointing, bool):
            raise GenkitError(f"model.net.gradient_checkpointing={gradient_checkpointing!r} must be true or false.")
        for key in ("transformers_version", "_name_or_path", "torch_dtype", "dtype"):
            settings.pop(key, None)  # facts of the file, not of the architecture: weights load in fp32
        settings["vocab_size"] = vocab_size
        try:
            hf_config = AutoConfig.for_model(model_type, **settings)
        except (ValueError, KeyError, TypeError) as err:
            import transformers

            raise GenkitError(
                f"transformers {transformers.__version__} cannot build a model_type={model_type!r} network "
                f"({first_line(err, 160)}). Pick an architecture it provides "
                f"(llama, qwen2, mistral, gpt_neox, gpt2, phi3, ...); genkit does not run a repository's own code."
            ) from None
        scaled = [key for key in LOGIT_TRANSFORMS if getattr(hf_config, key, None) not in (None, 1, 1.0)]
        if scaled:
            raise GenkitError(
                f"The {model_type} architecture transforms its logits ({scaled[0]}={getattr(hf_config, scaled[0])}), "
                f"which genkit's loss (hidden states times lm_head.weight) does not; it cannot train or score it."
            )
        self.max_positions = getattr(hf_config, "max_position_embeddings", None) or block_size
        if block_size > self.max_positions:
            raise GenkitError(
                f"data.block_size={block_size} is longer than the {self.max_positions} positions the {model_type} "
                f"model was built for (max_position_embeddings); lower data.block_size."
            )
        self.gradient_checkpointing = gradient_checkpointing
        self._set_model(AutoModelForCausalLM.from_config(hf_config, dtype=torch.float32))
        self.vocab_size, self.block_size = vocab_size, block_size
        self.n_layer, self.n_embd = hf_config.num_hidden_layers, hf_config.hidden_size
        self.model_type = model_type
        # peft's per-architecture choice (Llama, Qwen2: q_proj and v_proj; GPT-NeoX: query_key_value);
        # none known: finetune.lora then asks for finetune.lora.targets
        self.lora_targets = tuple(
            f"model.*.{name}" for name in TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model_type) or ()
        )

    def _set_model(self, model: nn.Module) -> None:
        if getattr(model.get_output_embeddings(), "bias", None) is not None:
            # genkit's loss reads lm_head.weight alone (genkit/models/linear_cross_entropy.py)
            raise GenkitError(
                f"The {model.config.model_type} architecture has a bias on its output layer, which genkit's loss "
                f"leaves out; it cannot train or score this model exactly."
            )
        if self.gradient_checkpointing:
            # recompute each layer's activations in the backward pass: memory for time (training only)
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        # from_pretrained hands models over in eval mode: the network trains (dropout on) unless
        # genkit itself puts it in eval mode, as it does for sampling and scoring
        self.model = model.train(self.training)

    @property
    def wte(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    @property
    def lm_head(self) -> nn.Linear:
        return self.model.get_output_embeddings()

    def load_pretrained(self, name_or_path: str) -> None:
        """The checkpoint's weights, by transformers' own loader (tied weights, shards and renamed
        keys handled there), from safetensors only and without the repository's code. The network
        was first built from the same config, so its shape is checked against the data here."""
        safetensors_files(name_or_path)  # a checkpoint with pickled weights only is refused first
        folder = pretrained_dir(name_or_path)
        try:
            model = AutoModelForCausalLM.from_pretrained(
                folder,
                config=self.model.config,
                use_safetensors=True,
                trust_remote_code=False,
                local_files_only=True,
                dtype=torch.float32,
            )
        except (RuntimeError, ValueError, OSError) as err:
            raise GenkitError(
                f"The weights of {name_or_path} do not load into the network built from its config "
                f"({first_line(err, 200)}). Leave data.vocab_size and the "
                f"network's sizes at the checkpoint's own."
            ) from None
        self._set_model(model)
        log.info("Loaded %s weights from %s", self.model_type, name_or_path)

    def hidden(self, idx: torch.Tensor, cache: HFRowCache | None = None) -> tuple[torch.Tensor, HFRowCache | None]:
        """idx (B, T) -> final hidden states (B, T, n_embd) after the last norm, and the cache
        extended by these positions; no cache in training (the loss needs none, and gradient
        checkpointing allows none)."""
        B, T = idx.shape
        extra = {} if cache is None else cache.inputs(T)
        out = self.model.base_model(
            input_ids=idx, cache=None if cache is None else cache.cache, use_cache=not self.training, **extra
        )
        if out.cache is None:
            return out.last_hidden_state, None
        if cache is None:
            return out.last_hidden_state, HFRowCache(out.cache, torch.full((B,), T, device=idx.device), T)
        return out.last_hidden_state, cache.extended(out.cache, T)

    def forward(self, idx: torch.Tensor, cache: HFRowCache | None = None) -> tuple[torch.Tensor, HFRowCache | None]:
        """idx (B, T) -> logits (B, T, vocab) and the cache extended by these positions."""
        h, cache = self.hidden(idx, cache)
        return self.lm_head(h), cache

    @property
    def context_length(self) -> int:
        """The positions the model was built for (max_position_embeddings): genkit.models.decoding
        slides a window past them."""
        return self.max_positions

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6N + 12 L T d (Kaplan et al. 2020), N without an untied input
        embedding (a lookup, not a matmul), T the training window block_size."""
        n = sum(p.numel() for p in self.parameters())
        if self.wte.weight is not self.lm_head.weight:
            n -= self.wte.weight.numel()
        return 6 * n + 12 * self.n_layer * self.block_size * self.n_embd

    def compile_units(self) -> list[nn.Module]:
        """The decoder layers (the base model's one ModuleList): each compiles in place, so state
        dict keys stay transformers' own."""
        lists = [m for m in self.model.base_model.children() if isinstance(m, nn.ModuleList)]
        return list(lists[0]) if lists else []

    def carry(self, cache: Any, keep: torch.Tensor | None = None) -> None:
        """Nothing carries over: positions restart with each training window."""
        return None
