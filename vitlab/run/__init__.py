"""One training run: its configuration, model families and models, data, the training step,
training, evaluation and the memory check. Imports nothing from vitlab.study or vitlab.report."""
