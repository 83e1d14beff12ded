"""logger=mlflow: Lightning's MLFlowLogger, on a local store under paths.log_dir unless it is given
a tracking server ($MLFLOW_TRACKING_URI, or logger.mlflow.tracking_uri).

The local store is an SQLite database (<log_dir>/mlflow.db) with the runs' files beside it
(<log_dir>/mlruns/): MLflow 3 refuses its older folder-only store unless told to allow it
(MLFLOW_ALLOW_FILE_STORE), as that store gets no more updates. One store for every run under
log_dir, so that MLflow's UI lists and compares them.
"""

from pathlib import Path

from lightning.pytorch.loggers import MLFlowLogger


class RunMLFlowLogger(MLFlowLogger):
    def __init__(self, store_dir: str, tracking_uri: str | None = None, **kwargs):
        if not tracking_uri:
            # absolute: the store stays the same for runs started from another folder
            store = Path(store_dir).expanduser().resolve()
            store.mkdir(parents=True, exist_ok=True)  # a run placed elsewhere (hydra.run.dir) may not have made it
            tracking_uri = f"sqlite:///{store / 'mlflow.db'}"
            kwargs.setdefault("artifact_location", str(store / "mlruns"))
        super().__init__(tracking_uri=tracking_uri, **kwargs)
