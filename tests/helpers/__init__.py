"""What several test modules share: CLI runs in-process, data files, synthetic data."""
