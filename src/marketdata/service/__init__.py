"""Service layer: the operations the CLI, API and scheduler share."""
