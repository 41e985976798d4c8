"""Training machinery: Lightning module, resumable data loading, checkpoints, callbacks."""
