"""Server-side search: the full-text index kept as events persist, and `POST /search`."""
