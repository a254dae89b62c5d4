"""Lake: Iceberg catalog and tables, readers for incoming files, ingest, catalog views, safe SQL."""
