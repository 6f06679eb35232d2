"""The world's exports to the real formats live in `gill_lite.data.formats`; re-exported here for convenience."""
from gill_lite.data.formats import (  # noqa: F401
    DataFormatError,
    confidence_label,
    export_cc3m,
    export_decisions,
    export_vist,
    load_cc3m,
    load_decisions,
    load_vist,
)
