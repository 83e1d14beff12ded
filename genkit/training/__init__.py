"""The machinery the verbs share: building a run's parts from its config, fine-tuning, sweeps."""
