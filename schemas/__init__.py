"""Arrow schemas of the tables dynocc writes, their version, and validation.

* :data:`FRAME_SCHEMA` — one row per mined frame with its relative-depth pairs.
* :data:`FAILURE_SCHEMA` — one row per input or work item that failed.

Parquet files carry ``dynocc.schema_version`` and ``dynocc.table`` in their
key-value metadata; :func:`read_table` checks both and validates on read.
"""

from .failures import FAILURE_COLUMNS, FAILURE_SCHEMA, failure_row, failures_table, validate_failures
from .frames import FRAME_COLUMNS, FRAME_SCHEMA, PAIR_COLUMNS, frame_row, frames_table, validate_frames
from .read import read_table, validate_table
from .validate import SCHEMA_VERSION, TABLE_KEY, VERSION_KEY, SchemaError, check_metadata

__all__ = [
    "SCHEMA_VERSION",
    "VERSION_KEY",
    "TABLE_KEY",
    "SchemaError",
    "FRAME_SCHEMA",
    "FRAME_COLUMNS",
    "PAIR_COLUMNS",
    "FAILURE_SCHEMA",
    "FAILURE_COLUMNS",
    "frame_row",
    "frames_table",
    "validate_frames",
    "failure_row",
    "failures_table",
    "validate_failures",
    "validate_table",
    "check_metadata",
    "read_table",
]
