"""Small shared helpers (atomic file writes, ...). Import the sub-modules directly."""
