"""Data: records, splits, collation and data-directory resolution."""
