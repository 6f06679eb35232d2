"""Data in the real formats: CC3M-style TSV, VIST SIS JSON and the decision TSV (see `formats`)."""
from .formats import (
    CC3MRow,
    DataFormatError,
    DecisionRow,
    LoadedList,
    Skipped,
    VistStory,
    confidence_label,
    export_cc3m,
    export_decisions,
    export_vist,
    load_cc3m,
    load_decisions,
    load_image,
    load_vist,
    parse_shape_note,
    shape_note,
)
