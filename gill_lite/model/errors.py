"""The error every checkpoint loader of GILL's parts raises when a checkpoint does not fit the model it is given."""


class CheckpointMismatchError(ValueError):
    """A GILL checkpoint was made for other frozen parts (or other sizes) than the ones given."""
