"""Converters from public evaluation data (../shared/data) to Manara's retrieval-evaluation format."""
