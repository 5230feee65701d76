"""Small shared helpers: user-facing errors and atomic file writes."""
