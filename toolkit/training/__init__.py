"""A training run: the phases of `train`, its callbacks, pretraining, distribution over devices."""
