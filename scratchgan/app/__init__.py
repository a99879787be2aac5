"""The application (layer 8): data, configuration, run folder, checkpoints, data-parallel training, the Trainer, plots, the command line."""
