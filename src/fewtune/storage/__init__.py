"""Model folders on disk: how they are written and read.

- model_folder: the format of a trained model's folder (fewtune.json, checksums, no pickle).
- atomic: write a folder or a file so that readers never see half of it.
- checkpoint: a training run's checkpoints (safetensors and JSON), for pretraining and LM fine-tuning.
- saved_models: any saved classifier from its folder, whichever runtime it needs (PyTorch, ONNX, static).

Nothing is imported here: checkpoint needs torch, and the command line's `--help` must stay quick.
"""
