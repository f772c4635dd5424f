"""Keras models: assembly around the shared core, the toolkit's layers, recurrent state and optimizers."""
