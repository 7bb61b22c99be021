"""Model folders on disk: how they are written and read.

- model_folder: the format of a trained model's folder (fewtune.json, checksums, no pickle).
- atomic: write a folder or a file so that readers never see half of it.
- checkpoint: a training run's checkpoints (safetensors and JSON), for pretraining and LM fine-tuning.
- integrity: the checksums of a folder's facts and, with a key, their signature.

File-level I/O only: what goes in a classifier's folder is fewtune.classifier_folder's, and loading any
saved classifier (PyTorch, ONNX, static) is fewtune.saved_models'; nothing here imports a model.

Nothing is imported here: checkpoint needs torch, and the command line's `--help` must stay quick.
"""
