"""Batches layer: the one place batches are built.

* from rows (a list of samples): :func:`assemble_rows`, fresh arrays in this process;
* from columns (decoded blocks): :class:`ColumnBlock`, :func:`finish_columns`;
* into and out of a shared-memory slot: :func:`write_rows`, :func:`write_columns`,
  :func:`read_slot`, described by a typed :class:`SlotLayout`.

The field rules (what is stacked, what stays a list) are :mod:`m5stream.batches.fields`,
shared by all of them. This layer imports only numpy, pyarrow (lazily, for Arrow columns) and
the native kernels, so formats can build blocks without knowing about workers.
"""

from .columns import ColumnBlock, Keys, TextColumn, concat, settle
from .columns import finish as finish_columns
from .fields import classify
from .rows import assemble_rows
from .slot import FieldKind, FieldSlot, SlotLayout, read_slot, write_columns, write_rows

__all__ = [
    "ColumnBlock",
    "FieldKind",
    "FieldSlot",
    "Keys",
    "SlotLayout",
    "TextColumn",
    "assemble_rows",
    "classify",
    "concat",
    "finish_columns",
    "read_slot",
    "settle",
    "write_columns",
    "write_rows",
]
