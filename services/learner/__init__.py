"""The learner: a PyTorchJob of DeepSpeed ranks training on batches from the SSB store."""
