"""The versioned schema of the app's own store (`app/store.py`)."""
