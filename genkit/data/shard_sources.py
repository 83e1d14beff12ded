"""What a data module over shard folders shares (genkit.data.token_shards, picture_shards,
pair_shards): the folders of data.path and their weights (data.mix), their descriptions read
once and checked, the fingerprints a checkpoint keeps so that a resumed run is refused on other
shards, and the training loader that streams every folder, each process its own part
(genkit.data.shards)."""

from collections.abc import Callable
from typing import Any, ClassVar

from genkit.data.batching import per_process
from genkit.data.shards import ShardLoader, check_weights, read_meta, shard_loader, source_paths, streaming_dataset
from genkit.errors import GenkitError


class ShardSources:
    """Mixed into a GenkitDataModule subclass (before it, so these methods come first)."""

    #: the kind of shards the module reads (genkit-shards.json's "kind")
    kind: ClassVar[str]

    def init_sources(self, path: Any, mix: Any, cache_dir: str | None) -> None:
        """Nothing is read here: a checkpoint samples without its shards (data.path may be cleared)."""
        self.paths = source_paths(path) if path is not None else []
        self.weights = check_weights(mix, self.paths) if self.paths else None
        # where the files of shards in object storage are kept (genkit.data.shards.local_cache)
        self.shards_cache = cache_dir
        self._metas: list[dict] | None = None

    def metas(self) -> list[dict]:
        """The description of every folder, read once, and checked (check_sources)."""
        if self._metas is None:
            if not self.paths:
                raise GenkitError("data.path is not set; give the folder `genkit prepare` wrote (or an s3:// address).")
            metas = [read_meta(p, self.kind, self.shards_cache) for p in self.paths]
            self.check_sources(metas)
            self._metas = metas
        return self._metas

    def check_sources(self, metas: list[dict]) -> None:
        """The folders agree with one another and with the config (a tokenizer, a picture size)."""

    def fingerprints(self) -> list[str]:
        return [meta.get("fingerprint") for meta in self.metas()]

    def prepare_data(self) -> None:
        """Nothing to prepare (`genkit prepare` did): the shards' descriptions are checked."""
        self.metas()

    # ---- what checkpoints keep ----------------------------------------------------------------

    def state_dict(self) -> dict:
        """The data module's own state, and which shards trained the run."""
        state = super().state_dict()
        if self._metas is not None:
            state["shards"] = self.fingerprints()
        return state

    def load_state_dict(self, state: dict) -> None:
        """On a resumed training run, the shards must be those the run was trained on: the saved
        position in them means nothing in others (sample and eval, which have no trainer, may read
        any)."""
        super().load_state_dict(state)
        saved = state.get("shards")
        if self.trainer is None or saved is None or not self.paths:
            return
        if list(saved) != self.fingerprints():
            raise GenkitError(
                f"This run was trained on other shards than data.path={','.join(self.paths)} names (another data "
                f"set, or this one prepared with other settings): its place in the training data means nothing in "
                f"these. Resume with the shards it was trained on, or start a new run from its weights with "
                f"model.init_from=<its checkpoint>."
            )

    # ---- training -----------------------------------------------------------------------------

    def streamed_training_loader(
        self,
        items: str,
        item_loader: Callable[[], Any] | None = None,
        collate_fn: Callable[[list], Any] | None = None,
    ) -> ShardLoader:
        """This process's training batches, streamed from every folder (mixed by data.mix);
        `items` names a training item in the message for a folder too small for one batch;
        `collate_fn` joins a batch's items (shards.shard_loader)."""
        self.metas()
        batch = per_process(self.trainer, self.batch_size)
        extra = (lambda: {"item_loader": item_loader()}) if item_loader else dict
        datasets = [
            streaming_dataset(p, "train", cache_dir=self.shards_cache, shuffle=True, seed=self.seed, **extra())
            for p in self.paths
        ]
        for p, dataset in zip(self.paths, datasets, strict=True):
            if len(dataset) < batch:
                raise GenkitError(
                    f"The shards in {p} hold {len(dataset)} {items} for this process, fewer than its batch of {batch}; "
                    f"lower data.batch_size."
                )
        loader = shard_loader(datasets, self.weights, batch, self.seed, self.num_workers, collate_fn)
        self._train_batches = loader  # GenkitDataModule.on_before_batch_transfer counts what training consumed
        return loader

    def shard_writer(self) -> tuple[str, str, str]:
        raise GenkitError(
            f"data={self.name} reads shards `genkit prepare` wrote already; train on them as they are (copy "
            f"the folder to move it), or prepare the data set they came from again with other settings."
        )

    def reference_data(self) -> dict:
        source = self.metas()[0].get("data", "<name>")
        raise GenkitError(
            f"genkit bench times a data config with its hand-written loop beside it, and reads whole splits for that; "
            f"bench the data config the shards were prepared from (data={source}, with the same options) instead."
        )
