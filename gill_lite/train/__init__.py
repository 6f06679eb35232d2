"""Training GILL: losses per stage, the loop, checkpoints, feature caches."""
from .loop import STAGES, load_gill, read_log, stage_dir, stage_log, train, train_stage

__all__ = ["STAGES", "load_gill", "read_log", "stage_dir", "stage_log", "train", "train_stage"]
