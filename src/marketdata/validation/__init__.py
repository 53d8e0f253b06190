"""Validation: pure checks over bar columns (the data-quality issue fills this in)."""
