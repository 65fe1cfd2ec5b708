"""Datasets the workbook generates: the HRI command corpus (later: demonstrations)."""
