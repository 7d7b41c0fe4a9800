"""Loading inputs: files, batches, checkpoints, restricted unpicklers, configs."""
