"""Iceberg data files written batch by batch, while the rows are still arriving.

pyiceberg's `Transaction.append` writes a file only once a whole file's worth of rows is in memory
(`write.target-file-size-bytes`), then encodes it in one go: for a pipeline, the Parquet encoding of
a group starts after its last page is read. `DataFileWriter` encodes each batch into the open
Parquet file as it comes (one row group at a time), and starts a new file when the open one has
taken the target size, so the encoding runs alongside the source and the group's commit only has
its metadata left to write. The files follow pyiceberg's own write path: the table's schema with
its field ids, its Parquet properties, its location provider and statistics; they are committed
with `Transaction.update_snapshot().fast_append()`.

Files written for a group that is then abandoned (an error, a kill) are never referenced by a
snapshot; `abort` deletes them when it can.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import pyarrow as pa
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import (
    FileFormatFactory,
    _to_requested_schema,
    pyarrow_to_schema,
    sanitize_column_names,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.table import TableProperties, WriteTask
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.typedef import Record
from pyiceberg.utils.properties import property_as_int


class DataFileWriter:
    """Rolling Parquet data files for one table (unpartitioned), fed one Arrow batch at a time."""

    def __init__(self, io: FileIO, metadata: TableMetadata, incoming: pa.Schema) -> None:
        if not metadata.spec().is_unpartitioned():
            raise ValueError("DataFileWriter writes unpartitioned tables only")
        self.io, self.metadata = io, metadata
        self.format = FileFormat(
            metadata.properties.get(
                TableProperties.WRITE_FILE_FORMAT, TableProperties.WRITE_FILE_FORMAT_DEFAULT
            )
        )
        self.model = FileFormatFactory.get(self.format)
        self.locations = load_location_provider(
            table_location=metadata.location, table_properties=metadata.properties
        )
        table_schema = metadata.schema()
        sanitized = sanitize_column_names(table_schema)
        self.file_schema = sanitized if sanitized != table_schema else table_schema
        self.batch_schema = pyarrow_to_schema(
            incoming, name_mapping=table_schema.name_mapping, format_version=metadata.format_version
        )
        self.target = (
            property_as_int(
                metadata.properties,
                TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
                TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
            )
            or TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT
        )
        self.write_uuid = uuid.uuid4()
        self.files: list[DataFile] = []
        self.paths: list[str] = []
        self._writer: Any = None
        self._output: Any = None
        self._path = ""
        self._bytes = 0

    def write(self, batch: pa.RecordBatch) -> None:
        """Encode `batch` into the open file (opening one when none is), rolling past the target size."""
        if not batch.num_rows:
            return
        shaped = _to_requested_schema(
            requested_schema=self.file_schema, file_schema=self.batch_schema, batch=batch,
            include_field_ids=True, format_model=self.model,
        )  # fmt: skip
        if self._writer is None:
            task = WriteTask(write_uuid=self.write_uuid, task_id=len(self.paths), record_batches=[],
                             schema=self.batch_schema)  # fmt: skip
            name = task.generate_data_file_filename(self.model.file_extension())
            self._path = self.locations.new_data_location(data_file_name=name)
            self.paths.append(self._path)
            self._output = self.io.new_output(self._path)
            self._writer = self.model.create_writer(self._output, self.file_schema, self.metadata.properties)
        self._writer.write(pa.Table.from_batches([shaped]))
        self._bytes += batch.nbytes
        if self._bytes >= self.target:
            self._roll()

    def _roll(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        statistics = writer.close()
        self.files.append(
            DataFile.from_args(
                content=DataFileContent.DATA, file_path=self._path, file_format=self.format,
                partition=Record(), file_size_in_bytes=len(self._output), sort_order_id=None,
                spec_id=self.metadata.default_spec_id, equality_ids=None, key_metadata=None,
                **statistics.to_serialized_dict(),
            )
        )  # fmt: skip
        self._bytes = 0

    def close(self) -> list[DataFile]:
        """The data files written, the open one finished."""
        self._roll()
        return self.files

    def abort(self) -> None:
        """Forget the files: close the open one and delete every file written (best effort)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        for path in self.paths:
            with contextlib.suppress(Exception):
                self.io.delete(path)
